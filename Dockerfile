# gearbridge in a container: a static binary on an empty image, run as a
# non-root user, with the durable queue in a volume.
#
#   docker build -t gearbridge .
#   docker run -d --name gearbridge -p 4730:4730 -v gearbridge:/var/lib/gearbridge gearbridge
#
# Arguments after the image name are more `gearbridge serve` flags, e.g.
# `--http 0.0.0.0:4731 --http-token-file /run/secrets/http-token` (and
# -p 4731:4731) to scrape /metrics from outside: /backup on that port hands
# out the whole queue, so serve refuses a non-loopback --http without a
# token (or an explicit --http-insecure). A bridge configuration goes in with
# `-v ./gearbridge.yaml:/etc/gearbridge/gearbridge.yaml:ro --config /etc/gearbridge/gearbridge.yaml`.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: a static binary that needs no libc in the final image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/usr/bin/gearbridge ./cmd/gearbridge \
 && mkdir -p /out/var/lib/gearbridge /out/etc/ssl/certs /out/tmp /out/usr/share/doc/gearbridge \
 && cp LICENSE /out/usr/share/doc/gearbridge/ \
 && packaging/third-party-licenses.sh > /out/usr/share/doc/gearbridge/THIRD_PARTY_LICENSES \
 && cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ \
 && echo 'gearbridge:x:65532:65532:gearbridge:/var/lib/gearbridge:/sbin/nologin' > /out/etc/passwd \
 && echo 'gearbridge:x:65532:' > /out/etc/group

FROM scratch
# The CA bundle is for https Jenkins masters; passwd names the user.
COPY --from=build /out/ /
COPY --from=build --chown=65532:65532 /out/var/lib/gearbridge /var/lib/gearbridge
COPY --from=build --chown=65532:65532 /out/tmp /tmp
USER 65532:65532
VOLUME /var/lib/gearbridge
EXPOSE 4730
# The admin protocol answers on the Gearman port: no shell or curl needed.
HEALTHCHECK --interval=30s --timeout=5s CMD ["/usr/bin/gearbridge", "status", "--server", "127.0.0.1:4730"]
ENTRYPOINT ["/usr/bin/gearbridge", "serve", "--db", "/var/lib/gearbridge/gearbridge.db"]
