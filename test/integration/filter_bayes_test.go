//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// bayesConfig turns off the checks that would ask DNS about the test senders; the statistical filter judges from
// 8 trained messages of each class so the test stays small.
const bayesConfig = `[antispam]
spf = false
dkim_verify = false
arc = false
dmarc = false
bayes_min_spam = 8
bayes_min_ham = 8
`

// Two vocabularies: the spam and ham the test trains and delivers differ in their words only, so it is the
// per-user filter, not the built-in rules, that files the spam into Junk.
var (
	spamWords = []string{"casino", "jackpot", "bonus", "winnings", "deposit", "roulette", "slots", "poker", "bet",
		"spins", "crypto", "payout", "vip", "lucky", "reward"}
	hamWords = []string{"meeting", "agenda", "project", "budget", "review", "minutes", "schedule", "report",
		"draft", "deadline", "team", "quarter", "planning", "notes", "lunch"}
)

// bayesMessage is message i of a class: ten words of its vocabulary, chosen by i, in an ordinary message.
func bayesMessage(words []string, i int, from string) string {
	var body []string
	for k := range 10 {
		body = append(body, words[(i*7+k*3)%len(words)])
	}
	subject := words[i%len(words)] + " " + words[(i+5)%len(words)]
	return strings.ReplaceAll(fmt.Sprintf("From: %s\nTo: alice@example.test\nSubject: %s\n"+
		"Date: %s\nMessage-ID: <%d.%s@test.example>\n\nHello,\n%s.\nRegards\n", from, subject,
		time.Now().UTC().Format(time.RFC1123Z), i, words[0], strings.Join(body, " ")), "\n", "\r\n")
}

// spamStatus returns `postern spam status` for the user.
func spamStatus(s *server, user string) string {
	s.t.Helper()
	return s.run("spam", "status", user)
}

// waitSpamStatus polls `postern spam status` until it reports want: IMAP training runs after the command's OK,
// in the background.
func waitSpamStatus(t *testing.T, s *server, user, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := spamStatus(s, user)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("spam status %q, want %q", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBayesTrainAndJunk: `postern spam train` teaches alice's filter from an mbox and a Maildir; the server
// (running meanwhile, sharing the database) then files held-out spam into her Junk and ham into her INBOX;
// moving a message into and out of Junk over IMAP trains it as spam, then moves it to ham.
func TestBayesTrainAndJunk(t *testing.T) {
	s := newIMAPServer(t, serverOptions{extra: bayesConfig})
	const user = "alice@example.test"
	s.addUser(user, "pw-alice")
	dir := t.TempDir()
	var mbox strings.Builder
	for i := range 10 {
		fmt.Fprintf(&mbox, "From spam@casino.example Mon Jan  1 00:00:00 2024\n%s\n",
			strings.ReplaceAll(bayesMessage(spamWords, i, "Lucky <win@casino.example>"), "\r\n", "\n"))
	}
	mboxPath := filepath.Join(dir, "spam.mbox")
	if err := os.WriteFile(mboxPath, []byte(mbox.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	maildir := filepath.Join(dir, "Maildir", "cur")
	if err := os.MkdirAll(maildir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		msg := bayesMessage(hamWords, i, "Bob <bob@work.example>")
		if err := os.WriteFile(filepath.Join(maildir, fmt.Sprintf("%d.host:2,S", i)), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if out := s.run("spam", "train", "--spam", user, mboxPath); !strings.Contains(out, "10 messages read, 10 learned") {
		t.Fatalf("train --spam: %q", out)
	}
	if out := s.run("spam", "train", "--ham", user, filepath.Join(dir, "Maildir")); !strings.Contains(out, "now has 10 spam and 10 ham") {
		t.Fatalf("train --ham: %q", out)
	}
	if out := s.run("spam", "train", "--ham", user, filepath.Join(dir, "Maildir")); !strings.Contains(out, "10 messages read, 0 learned") {
		t.Fatalf("training the same messages again: %q", out)
	}
	waitSpamStatus(t, s, user, "spam\t10\nham\t10\nready\ttrue\n")

	smtpDeliver(t, s, "win@casino.example", user, bayesMessage(spamWords, 11, "Lucky <win@casino.example>"))
	smtpDeliver(t, s, "bob@work.example", user, bayesMessage(hamWords, 11, "Bob <bob@work.example>"))
	m := s.mailboxes(user)
	if m["Junk"][0] != 1 || m["INBOX"][0] != 1 {
		t.Fatalf("after delivery: INBOX %v, Junk %v; want one message each\n%s", m["INBOX"], m["Junk"], s.mailLog())
	}
	if log := s.mailLog(); !strings.Contains(log, "user's classifier") {
		t.Errorf("mail log does not say why the spam went to Junk:\n%s", log)
	}

	// The user disagrees with nothing yet; now they move the ham into Junk and back out over IMAP.
	ic := dialIMAPS(t, s.addr(s.ports.IMAPS))
	ic.greeting()
	ic.login(user, "pw-alice")
	ic.cmd("SELECT INBOX").ok()
	ic.cmd("MOVE 1 Junk").ok()
	waitSpamStatus(t, s, user, "spam\t11\nham\t10\nready\ttrue\n")
	ic.cmd("SELECT Junk").ok()
	ic.cmd("MOVE 2 INBOX").ok() // the ham: it came into Junk after the spam
	waitSpamStatus(t, s, user, "spam\t10\nham\t11\nready\ttrue\n")
	// Moving spam to Trash is no verdict: nothing changes.
	ic.cmd("MOVE 1 Trash").ok()
	ic.cmd("NOOP").ok()
	if got := spamStatus(s, user); got != "spam\t10\nham\t11\nready\ttrue\n" {
		t.Errorf("after moving spam to Trash: %q", got)
	}
}
