# cohort in a container: docker build -t cohort . ; see docker-compose.yml and README "Docker".
# Build stage: the compiler and the -dev packages, which the image leaves behind.
FROM debian:bookworm-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev make pkg-config \
       libsqlite3-dev libpq-dev libcjson-dev libcurl4-openssl-dev libwebsockets-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY lib lib
COPY bot bot
COPY cli cli
COPY store store
COPY adapters adapters
COPY roadmaps roadmaps
COPY scripts scripts
COPY dist dist
COPY config.example.toml ./
RUN make -j2 CFLAGS="-O2 -g0" \
    && make install PREFIX=/usr DESTDIR=/out STATEDIR=/data \
    && strip /out/usr/bin/cohort

# Runtime stage: the shared libraries, CA certificates and time zones, nothing else.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata curl \
       libsqlite3-0 libpq5 libcjson1 libcurl4 libwebsockets17 \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin cohort \
    && mkdir -p /data /config && chown cohort:cohort /data
COPY --from=build /out/usr/bin/cohort /usr/bin/cohort
COPY --from=build /out/usr/share/cohort /usr/share/cohort
USER cohort
WORKDIR /data
# The store lives on a volume; the configuration is mounted read-only at /config.
VOLUME ["/data"]
ENV COHORT_CONFIG=/config/cohort.toml
# SIGTERM finishes the answers in flight and closes the gateway resumably.
STOPSIGNAL SIGTERM
# The HTTP server (/healthz, /metrics, the group pages) listens on 8080 in the container;
# COHORT_HTTP_LISTEN wins over http.listen. /healthz is 200 when the store answers and every
# enabled platform is connected.
ENV COHORT_HTTP_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-m", "4", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/bin/cohort"]
CMD ["run"]
