package outbound

import (
	"errors"
	"strconv"
	"strings"
)

// DecodeXtext decodes RFC 3461 4 xtext ("+" followed by two upper-case hex digits encodes a byte).
func DecodeXtext(s string) (string, error) {
	if !strings.Contains(s, "+") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("xtext: truncated hexchar")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", errors.New("xtext: bad hexchar")
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), nil
}
