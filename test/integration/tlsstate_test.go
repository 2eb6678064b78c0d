//go:build integration

package integration

import "crypto/tls"

type tlsState = tls.ConnectionState
