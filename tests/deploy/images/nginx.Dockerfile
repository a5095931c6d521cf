# Stand-in for the official nginx image: Debian's nginx, logs to the container's
# output, /etc/nginx/conf.d/*.conf included in the http block, no default site.
ARG BASE
FROM ${BASE}
RUN apt-get update -q && \
    apt-get install -y -q --no-install-recommends nginx && \
    rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default && \
    ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
