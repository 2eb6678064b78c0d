package auth

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// loginServer implements the LOGIN mechanism (draft-murchison-sasl-login). go-sasl dropped its LOGIN server
// (it only keeps the client), but Outlook, old Thunderbird and the seeds' telnet transcripts use it.
type loginServer struct {
	check    func(username, password string) error
	username string
	step     int
}

// NewLoginServer returns a LOGIN server. An initial response is taken as the username, as sendmail and Postfix do.
func NewLoginServer(check func(username, password string) error) sasl.Server {
	return &loginServer{check: check}
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		if len(response) == 0 {
			return nil, true, errors.New("empty username")
		}
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.username, string(response))
	}
	return nil, true, errors.New("unexpected LOGIN response")
}
