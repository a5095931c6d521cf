# Stand-in for the official redis image: Debian's redis-server 7, data in /data.
ARG BASE
FROM ${BASE}
RUN apt-get update -q && \
    apt-get install -y -q --no-install-recommends redis-server && \
    rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
VOLUME /data
CMD ["redis-server", "--protected-mode", "no"]
