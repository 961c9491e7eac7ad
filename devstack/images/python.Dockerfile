# Stand-in for the official python:3.11 slim image where no registry can be pulled from:
# Debian's python3 (3.11) in a virtual environment rooted at /usr/local, so `python` and `pip`
# sit where the official image has them. The host's extra CA certificates (a TLS proxy's) are
# trusted, so builds on this image reach PyPI as the host does.
ARG DEBIAN_IMAGE
# hadolint ignore=DL3006
FROM ${DEBIAN_IMAGE}
COPY ca-certificates/ /usr/local/share/ca-certificates/
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && update-ca-certificates \
    && python3 -m venv /usr/local \
    && /usr/local/bin/pip --version
ENV LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
