# One image per service: docker build --build-arg SERVICE=consent-service -t cmc/consent .
# (SERVICE is the package name without @cmc/: consent-service, care-plan-service, audit-service, notification-service, gateway, embedded.)
# Multi-stage: build the workspace, then copy out only the service with its production dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /src
RUN corepack enable
COPY . .
RUN pnpm install --frozen-lockfile && pnpm build
ARG SERVICE
RUN pnpm --filter "@cmc/${SERVICE}" deploy --prod --legacy /out

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /out /app
# Where the audit service keeps its checkpoint signing key and notification its hook-secret key, when their *_FILE settings point there (volumes).
RUN mkdir -p /var/lib/cmc-audit /var/lib/cmc-notification && chown node:node /var/lib/cmc-audit /var/lib/cmc-notification && chmod 700 /var/lib/cmc-audit /var/lib/cmc-notification
USER node
ENV HOST=0.0.0.0
# kafkajs 2.2.4 schedules a negative timeout that Node 24 warns about on every request; it is harmless.
# A young generation of 16 MB semi-spaces: V8 otherwise grows it to 128 MB under load (decision 0008, bench:flags).
CMD ["node", "--disable-warning=TimeoutNegativeWarning", "--max-semi-space-size=16", "dist/server.js"]
