# syntax=docker/dockerfile:1
# vm-mesh-sync image. Node 24 runs the TypeScript sources as they are (type stripping): there is
# no build stage, only the production dependencies and the sources.
#
#   docker build -t vm-mesh-sync .
#   docker run --rm --read-only --tmpfs /tmp -v "$PWD/config/examples:/etc/vm-mesh-sync:ro" \
#     vm-mesh-sync plan --config /etc/vm-mesh-sync/static.yaml

# --- deps: production dependencies only, exactly as locked --------------------------------------
FROM node:24-slim AS deps
WORKDIR /app
ENV NODE_ENV=production
# --engine-strict: every locked package must accept this Node (the image's Node is the one that runs).
COPY package.json package-lock.json .npmrc ./
# No install scripts: nothing in the production tree needs compiling (msgpackr-extract, an
# optional speed-up, ships prebuilt binaries as optional packages).
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    npm ci --omit=dev --ignore-scripts --engine-strict --no-audit --no-fund

# --- runtime ------------------------------------------------------------------------------------
FROM node:24-slim AS runtime
LABEL org.opencontainers.image.title="vm-mesh-sync" \
      org.opencontainers.image.description="Brings cloud virtual machines into an Istio service mesh as WorkloadEntries." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app

# Files stay owned by root: the process (uid 1000) can read but never change its own code.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY config ./config
COPY providers ./providers
COPY services ./services

# The `node` user of the base image, numeric so that Kubernetes can check runAsNonRoot.
USER 1000:1000

# The process writes nothing but to /tmp, so the root filesystem can be read-only
# (`docker run --read-only --tmpfs /tmp`; in Kubernetes /tmp is an emptyDir).
# Webhooks on 8080 (server.port); health, readiness, metrics and status on 8081 (server.adminPort).
EXPOSE 8080 8081

# Only for `docker run`/compose; Kubernetes uses the Deployment's probes. The slim image has no
# curl, Node itself asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.VMS_ADMIN_PORT || 8081) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# Node as PID 1 handles SIGTERM itself: `serve` stops taking jobs and finishes those in flight.
ENTRYPOINT ["node", "bin/vm-mesh-sync.js"]
CMD ["serve", "--config", "/etc/vm-mesh-sync/config.yaml"]
