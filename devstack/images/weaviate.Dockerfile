# Stand-in for the official Weaviate image: the server `make setup` built from Weaviate's Go
# module, plus wget for the healthcheck (busybox wget in the official Alpine image).
ARG DEBIAN_IMAGE
# hadolint ignore=DL3006
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends wget ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY weaviate-server /bin/weaviate
EXPOSE 8080 50051
ENTRYPOINT ["/bin/weaviate"]
CMD ["--host", "0.0.0.0", "--port", "8080", "--scheme", "http"]
