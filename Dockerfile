# One image for every process type: `tradewire poll`, `tradewire worker`, `tradewire run`.
# The base is pinned by exact tag (Python patch release and Debian release) so a rebuild
# gets the same interpreter; bump it on purpose, with the lock.
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
# Dependencies first, from the hashed lock (its own layer: code changes do not reinstall it).
COPY requirements.lock ./
RUN pip install --no-cache-dir --prefix=/install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY config ./config
COPY core ./core
COPY service ./service
COPY workers ./workers
RUN pip install --no-cache-dir --prefix=/install --no-deps .

FROM python:3.11.14-slim-bookworm
RUN useradd --create-home --uid 10001 tradewire
COPY --from=build /install /usr/local
WORKDIR /app
# The default settings, taxonomy and feed list are in the package (core/defaults/); mount
# files at /app/config/ (or name them with TRADEWIRE_CONFIG, _FEEDS_FILE, _TAXONOMY_FILE)
# to override them.
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
