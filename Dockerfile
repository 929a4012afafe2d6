# One image for every process type: `tradewire poll`, `tradewire worker`, `tradewire run`.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tradewire
COPY --from=build /install /usr/local
WORKDIR /app
COPY config ./config
COPY schemas ./schemas
RUN mkdir -p /app/var/corpus && chown -R tradewire /app/var
USER tradewire
ENV PYTHONUNBUFFERED=1 \
    TRADEWIRE_HEALTH_HOST=0.0.0.0 \
    TRADEWIRE_HEALTH_PORT=8080 \
    TRADEWIRE_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["tradewire"]
CMD ["run"]
