# Naive baseline for benchmarks/crossbuild (not what the static plugin writes): the npm stage is
# not pinned to $BUILDPLATFORM, so for linux/arm64 and linux/arm/v7 node and npm run under QEMU.
FROM localhost:5000/library/node:18-slim AS build
WORKDIR /src
ARG NPM_REGISTRY=""
COPY package.json package-lock.json* npm-shrinkwrap.json* .npmrc* ./
RUN --mount=type=cache,target=/root/.npm \
    if [ -n "$NPM_REGISTRY" ]; then export npm_config_registry="$NPM_REGISTRY"; fi; \
    npm ci --no-audit --no-fund
COPY . .
RUN npm run build && \
    if [ ! -d dist ]; then echo "npm run build did not create dist: set output_dir" >&2; \
    exit 1; fi

FROM localhost:5000/library/caddy:2-alpine
COPY --link <<'EOF' /etc/caddy/Caddyfile
{
	admin off
	auto_https off
}

:8080 {
	root * /srv
	encode gzip
	file_server
}
EOF

COPY --link --from=build /src/dist/ /srv/
ENV XDG_CONFIG_HOME=/tmp/caddy/config XDG_DATA_HOME=/tmp/caddy/data
USER 65532:65532
EXPOSE 8080
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
