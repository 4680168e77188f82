# Spy Agency's container image: a static binary on an empty base, run as a user without privileges.
#   docker build -t spyagency:$(git describe --always) .
# The build stage needs the Go module proxy; the image needs nothing from outside at run time (the
# page's scripts and styles are embedded in the binary). Deployment: docs/deployment.md, deploy/.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: the SQLite driver is pure Go, so the binary links statically and runs on scratch.
# -buildvcs=true stamps the commit for `spyagency version` (the .git folder is part of the context).
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=true -ldflags='-s -w' -o /out/spyagency ./cmd/spyagency \
 && mkdir -p /out/tmp /out/data && chmod 1777 /out/tmp

FROM scratch
# CA certificates for HTTPS to OMS, cmsweb, the condition DB service and CERN SSO. Add the CERN Grid CA
# bundle here (or mount it) when a source's certificate is signed by it.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/spyagency /usr/local/bin/spyagency
# SQLite's temporary files, and the data directory of a single-process deployment (mount a volume).
COPY --from=build --chown=65532:65532 /out/tmp /tmp
COPY --from=build --chown=65532:65532 /out/data /var/lib/spyagency
USER 65532:65532
ENV TMPDIR=/tmp
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/spyagency"]
CMD ["serve", "--config", "/etc/spyagency/spyagency.yaml"]
