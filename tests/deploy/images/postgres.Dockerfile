# Stand-in for the official postgres image (no registry here): Debian's PostgreSQL 15,
# the same POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB / PGDATA contract.
ARG BASE
FROM ${BASE}
RUN apt-get update -q && \
    apt-get install -y -q --no-install-recommends postgresql-15 && \
    rm -rf /var/lib/apt/lists/* && \
    mkdir -p /var/lib/postgresql/data /var/run/postgresql && \
    chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER postgres
VOLUME /var/lib/postgresql/data
STOPSIGNAL SIGINT
ENTRYPOINT ["sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["postgres"]
