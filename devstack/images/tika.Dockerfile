# Stand-in for the official Apache Tika image: the server jar `make setup` fetched from Maven
# Central on Debian's Java 17 (no OCR: the official "full" image adds Tesseract).
ARG DEBIAN_IMAGE
# hadolint ignore=DL3006
FROM ${DEBIAN_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless wget \
    && rm -rf /var/lib/apt/lists/*
COPY tika-server.jar /opt/tika/tika-server.jar
USER 35002:35002
EXPOSE 9998
ENTRYPOINT ["java", "-Djava.awt.headless=true", "-jar", "/opt/tika/tika-server.jar", "-h", "0.0.0.0", "-p", "9998"]
