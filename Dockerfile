# syntax=docker/dockerfile:1
# visitflow: one static binary, split into roles at run time with --role.
# Untested here (no Docker engine on the build machine); see docs/deploy.md.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: a static binary that runs on distroless/static. time/tzdata is
# embedded by cmd/visitflow, so the image needs no zoneinfo.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/visitflow ./cmd/visitflow

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/visitflow /visitflow
COPY config.yaml /etc/visitflow/config.yaml
# nonroot = uid 65532; nothing in the image is writable by it or needs to be.
USER nonroot:nonroot
EXPOSE 8080
ENV VISITFLOW_CONFIG=/etc/visitflow/config.yaml
ENTRYPOINT ["/visitflow"]
CMD ["serve", "--role", "all"]
