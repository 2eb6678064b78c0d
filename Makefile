# Postern. `make run` starts a demo server, `make test` runs every test (see README.md).
GO          ?= go
VERSION     ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
BIN         := bin/postern
RUNDIR      := run
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo "$$($(GO) env GOPATH)/bin/staticcheck")
FUZZTIME    ?= 15s
BENCHTIME   ?= 2s

.PHONY: build run test vet unit integration lint fuzz bench bench-go clean crashtest

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/postern

# A demo instance under run/: unprivileged loopback ports, domain example.test, user demo@example.test.
run: build
	@if [ ! -f $(RUNDIR)/postern.toml ]; then \
		$(BIN) init --dir $(RUNDIR) --hostname localhost --domain example.test --unprivileged >/dev/null && \
		echo demo-password | $(BIN) -c $(RUNDIR)/postern.toml user add demo@example.test --password-stdin; \
	fi
	@echo "Postern is starting with $(RUNDIR)/postern.toml (data in $(RUNDIR)/data, mail log $(RUNDIR)/data/mail.log)."
	@echo "  demo user:    demo@example.test / demo-password"
	@echo "  submit:       swaks --server 127.0.0.1:2587 --tls --auth PLAIN --auth-user demo@example.test --auth-password demo-password --from demo@example.test --to demo@example.test"
	@echo "  MX (25):      swaks --server 127.0.0.1:2525 --from someone@example.net --to demo@example.test"
	@echo "  IMAP:         127.0.0.1:2143 (STARTTLS) or 2993 (TLS), user demo@example.test; e.g."
	@echo "                openssl s_client -quiet -starttls imap -connect 127.0.0.1:2143 -CAfile $(RUNDIR)/data/ca/ca.crt"
	@echo "  POP3:         127.0.0.1:2110 (STLS) or 2995 (TLS); e.g. curl -k pop3s://127.0.0.1:2995/ -u demo@example.test:demo-password"
	@echo "  TLS by hand:  openssl s_client -starttls smtp -connect 127.0.0.1:2587 -CAfile $(RUNDIR)/data/ca/ca.crt"
	@echo "  mailboxes:    $(BIN) -c $(RUNDIR)/postern.toml mailbox list demo@example.test"
	@echo "Stop with Ctrl-C."
	exec $(BIN) -c $(RUNDIR)/postern.toml serve

# Everything: vet, unit tests with the race detector, end-to-end tests against the real binary.
test: vet unit integration

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./test/integration/...
	$(GO) vet -tags crash ./test/crash/...

unit:
	$(GO) test -race ./...

integration:
	$(GO) test -tags integration -count=1 -timeout 15m ./test/integration/...

lint:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./test/integration/...
	@if [ -x "$(STATICCHECK)" ]; then \
		echo "$(STATICCHECK) ./..."; $(STATICCHECK) ./... && $(STATICCHECK) -tags integration ./test/integration/...; \
	elif [ "$$CI" = true ]; then echo "staticcheck missing in CI"; exit 1; \
	else echo "staticcheck not installed: skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

# Every fuzz target (found with grep) for FUZZTIME each. A target that fails without writing a crasher to its
# testdata/fuzz/ hit Go 1.26's fuzztime race (golang/go#75804, "context deadline exceeded"; fixed in Go 1.27) and
# runs once more; one that writes a crasher fails at once.
fuzz:
	@grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do \
		d=$$(dirname "$$f"); \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			echo "== $$d $$t"; n=$$(ls "$$d/testdata/fuzz/$$t" 2>/dev/null | wc -l); \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) "$$d" && continue; \
			[ "$$(ls "$$d/testdata/fuzz/$$t" 2>/dev/null | wc -l)" = "$$n" ] || exit 1; \
			echo "== $$d $$t failed without a crasher (golang/go#75804): once more"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) "$$d" || exit 1; \
		done; \
	done

# Durability under SIGKILL (docs/durability.md); CRASH_MESSAGES, CRASH_KILLS, CRASH_SESSIONS, CRASH_SEED tune it,
# CRASH_REPORT=FILE writes the run's numbers.
crashtest: build
	POSTERN_BIN=$(abspath $(BIN)) $(GO) test -tags crash -count=1 -v -timeout 30m -run '^TestCrash$$' ./test/crash/

# Side by side with Postfix and Dovecot (root, Debian; installs them if missing): writes docs/benchmarks.md.
# BENCH_QUICK=1 runs each workload once at a small size and leaves the doc alone. Never part of test or CI.
bench:
	bench/run.sh

# The Go micro-benchmarks of the packages.
bench-go:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./...

clean:
	rm -rf bin
