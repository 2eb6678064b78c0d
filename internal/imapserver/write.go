package imapserver

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Response encoding helpers. They append to a byte slice so a FETCH response is built without fmt.

// appendString writes s as a quoted string when that is allowed (RFC 9051 4.3: no CR, LF or NUL; 8-bit only as
// UTF-8 in a UTF-8 session) and short, otherwise as a literal.
func appendString(dst []byte, s string, utf8OK bool) []byte {
	if canQuote(s, utf8OK) {
		return appendQuoted(dst, s)
	}
	return appendLiteral(dst, s)
}

func canQuote(s string, utf8OK bool) bool {
	if len(s) > 1000 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\r' || c == '\n' {
			return false
		}
		if c >= 0x80 && !utf8OK {
			return false
		}
	}
	return !utf8OK || utf8.ValidString(s)
}

func appendQuoted(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, s[i])
	}
	return append(dst, '"')
}

func appendLiteral(dst []byte, s string) []byte {
	dst = append(dst, '{')
	dst = strconv.AppendInt(dst, int64(len(s)), 10)
	dst = append(dst, "}\r\n"...)
	return append(dst, s...)
}

// appendAstring writes s as an atom when it is one (and not NIL), else as a string.
func appendAstring(dst []byte, s string, utf8OK bool) []byte {
	if s != "" && !strings.EqualFold(s, "NIL") {
		atom := true
		for i := 0; i < len(s); i++ {
			if !isAstringChar(s[i]) {
				atom = false
				break
			}
		}
		if atom {
			return append(dst, s...)
		}
	}
	return appendString(dst, s, utf8OK)
}

// appendUint writes a number.
func appendUint(dst []byte, n uint64) []byte { return strconv.AppendUint(dst, n, 10) }

// appendFlags writes a parenthesized flag list.
func appendFlags(dst []byte, flags []string) []byte {
	dst = append(dst, '(')
	for i, f := range flags {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, f...)
	}
	return append(dst, ')')
}

// appendDateTime writes an INTERNALDATE: DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE.
func appendDateTime(dst []byte, t time.Time) []byte {
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, "02-Jan-2006 15:04:05 -0700")
	return append(dst, '"')
}

// uidRanges compresses ascending UIDs into an IMAP sequence set ("1:3,7").
func appendUIDSet(dst []byte, uids []uint32) []byte {
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendUint(dst, uint64(uids[i]))
		if j > i {
			dst = append(dst, ':')
			dst = appendUint(dst, uint64(uids[j]))
		}
		i = j + 1
	}
	return dst
}

// appendSeqList writes a sequence set of any order (COPYUID keeps pairs in source order).
func appendSeqList(dst []byte, nums []uint32) []byte {
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendUint(dst, uint64(nums[i]))
		if j > i {
			dst = append(dst, ':')
			dst = appendUint(dst, uint64(nums[j]))
		}
		i = j + 1
	}
	return dst
}
