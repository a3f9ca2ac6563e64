# l7lb as a static binary on a distroless base (not built in CI).
FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /l7lb ./cmd/l7lb

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /l7lb /l7lb
USER 65532:65532
ENTRYPOINT ["/l7lb"]
