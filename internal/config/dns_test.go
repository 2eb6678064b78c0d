package config

import (
	"strings"
	"testing"
)

func TestDNSCacheSize(t *testing.T) {
	c := Default()
	if c.DNS.CacheSize != 10000 {
		t.Errorf("default dns.cache_size = %d, want 10000", c.DNS.CacheSize)
	}
	for _, n := range []int{0, 1, 10000} {
		c.DNS.CacheSize = n
		if err := c.Validate(); err != nil {
			t.Errorf("cache_size %d: %v", n, err)
		}
	}
	c.DNS.CacheSize = -1
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "dns.cache_size") {
		t.Errorf("cache_size -1: %v", err)
	}
}
