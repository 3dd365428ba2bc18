FROM python:3.11-slim

WORKDIR /opt/klamm
COPY pyproject.toml setup.py README.md ./
COPY broker ./broker
COPY client ./client
COPY protocol ./protocol
COPY zk ./zk
RUN pip install --no-cache-dir . && useradd --system --home /data klamm \
    && mkdir -p /data && chown klamm /data

USER klamm
VOLUME /data
EXPOSE 9092
# SIGTERM (docker stop) flushes and checkpoints every log before exiting.
STOPSIGNAL SIGTERM
ENTRYPOINT ["klamm"]
CMD ["standalone", "--listen", "0.0.0.0:9092", "--data-dir", "/data", \
     "--override", "advertised.host=localhost"]
