# The seed article's first Dockerfile: the compiler runs in the per-platform stage, so for
# every foreign platform it runs under QEMU emulation.
FROM localhost:5000/library/golang:1.19 AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 go build -o /out/app .

FROM localhost:5000/library/alpine:3.20
COPY --from=build /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
