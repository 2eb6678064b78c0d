# Postern — see README.md. `make run` starts a demo server, `make test` runs every test.
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/postern
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: build run test unit integration lint fuzz bench clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/postern

run: build
	@if [ ! -f run/postern.toml ]; then \
		$(BIN) init --dir run --hostname localhost --domain example.test --unprivileged >/dev/null && \
		echo demo-password | $(BIN) -c run/postern.toml user add demo@example.test --password-stdin; \
	fi
	@echo "Postern is starting with run/postern.toml (data in run/data, mail log in run/data/mail.log)."
	@echo "  demo user:    demo@example.test / demo-password"
	@echo "  send mail:    swaks --server 127.0.0.1:2587 --tls --auth PLAIN --auth-user demo@example.test --auth-password demo-password --from demo@example.test --to demo@example.test"
	@echo "  MX (port 25): swaks --server 127.0.0.1:2525 --from someone@example.net --to demo@example.test"
	@echo "  TLS by hand:  openssl s_client -starttls smtp -connect 127.0.0.1:2587 -CAfile run/data/ca/ca.crt"
	@echo "  see it:       $(BIN) -c run/postern.toml mailbox list demo@example.test"
	@echo "Stop with Ctrl-C."
	exec $(BIN) -c run/postern.toml serve

test: lint unit integration

unit:
	$(GO) test -race -count=1 ./...

integration:
	$(GO) test -tags integration -count=1 -timeout 15m ./test/integration/...

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$fmt" ]; then echo "gofmt needed:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./test/integration/...
	@if [ -x "$(STATICCHECK)" ]; then $(STATICCHECK) ./... && $(STATICCHECK) -tags integration ./test/integration/...; \
		elif [ "$$CI" = true ]; then echo "staticcheck missing in CI"; exit 1; \
		else echo "staticcheck not installed; skipped"; fi

# Each fuzz target runs for FUZZTIME.
FUZZTIME ?= 15s
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' internal | xargs -n1 dirname | sort -u | while read d; do \
		for f in $$(grep -h '^func Fuzz' $$d/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$d $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./$$d || exit 1; \
		done; done

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/store/sqlite/

clean:
	rm -rf bin
