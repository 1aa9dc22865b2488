# Builds the tokengate Caddy with xcaddy, the way Caddy plugins are built,
# into an image that serves Caddyfile.example:
#   docker build -f xcaddy.Dockerfile -t caddy-tokengate .
#   docker run --rm --name tokengate caddy-tokengate
#   docker exec tokengate caddy tokengate issue --owner alice --purpose demo \
#       --scope demo:read --service demo --ttl 30m
# Caddyfile.example listens on 127.0.0.1 only, so the demo is reached from
# inside the container (docker exec); to publish ports, mount a Caddyfile
# of your own at /etc/caddy/Caddyfile.
# CI runs the same xcaddy step outside Docker (.ci/xcaddy-build), so this
# file stays correct even where no Docker engine runs.
FROM caddy:2.11.9-builder AS builder
# The version `caddy list-modules --versions` and tokengate_build_info
# report; a replaced module keeps the version it is required at.
ARG TOKENGATE_VERSION=v0.2.0-dev
COPY . /src/caddy-tokengate
RUN xcaddy build v2.11.9 --output /usr/bin/caddy --with github.com/tokengate/caddy-tokengate@${TOKENGATE_VERSION}=/src/caddy-tokengate

FROM caddy:2.11.9
COPY --from=builder /usr/bin/caddy /usr/bin/caddy
# The image's command is `caddy run --config /etc/caddy/Caddyfile`; its
# working directory /srv takes ./audit.log, its /data the token store.
COPY Caddyfile.example /etc/caddy/Caddyfile
RUN caddy list-modules | grep -q '^http.handlers.tokengate$' \
 && XDG_DATA_HOME=/tmp/validate caddy validate --config /etc/caddy/Caddyfile --adapter caddyfile \
 && rm -rf /tmp/validate
