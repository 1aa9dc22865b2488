# Builds the tokengate Caddy with xcaddy, the way Caddy plugins are built.
#   docker build -f xcaddy.Dockerfile -t caddy-tokengate .
# CI runs the same xcaddy step outside Docker (.ci/xcaddy-build), so this
# file stays correct even where no Docker engine runs.
FROM caddy:2.11.9-builder AS builder
COPY . /src/caddy-tokengate
RUN xcaddy build v2.11.9 --output /usr/bin/caddy --with github.com/tokengate/caddy-tokengate@v0.0.0=/src/caddy-tokengate

FROM caddy:2.11.9
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
RUN caddy list-modules | grep -q '^http.handlers.tokengate$'
