package imapserver

// QUOTA (RFC 9208) with the STORAGE resource: one quota root "" per user, from the user's quota_bytes.

func (c *session) cmdGetQuotaRoot(tag string, p *parser) error {
	p.sp()
	name := p.mailbox()
	p.end()
	if p.err != nil {
		return p.err
	}
	if _, err := c.opts().Store.GetMailbox(c.ctx, c.user.ID, name); err != nil {
		return storeError(err, "Mailbox")
	}
	limit, used, err := c.quota()
	if err != nil {
		return err
	}
	if limit == 0 {
		c.writeLine(append([]byte("* QUOTAROOT "), c.mailboxString(name)...)) // no quota root: unlimited
		return nil
	}
	c.writeLine(append(append([]byte("* QUOTAROOT "), c.mailboxString(name)...), ` ""`...))
	c.writeQuota(limit, used)
	return nil
}

func (c *session) cmdGetQuota(tag string, p *parser) error {
	p.sp()
	root := p.astring()
	p.end()
	if p.err != nil {
		return p.err
	}
	limit, used, err := c.quota()
	if err != nil {
		return err
	}
	if root != "" || limit == 0 {
		return no("NONEXISTENT", "No such quota root")
	}
	c.writeQuota(limit, used)
	return nil
}

// cmdSetQuota refuses: quotas are set by the administrator (postern user add --quota).
func (c *session) cmdSetQuota(tag string, p *parser) error {
	for p.ok() && !p.atEnd() {
		p.pos = len(p.line)
	}
	p.done = true
	return no("CANNOT", "Quotas are set by the administrator")
}

// quota returns the user's limit and usage in bytes, read fresh so an admin change shows at once.
func (c *session) quota() (limit, used int64, err error) {
	u, err := c.opts().Store.GetUserByID(c.ctx, c.user.ID)
	if err != nil {
		return 0, 0, err
	}
	used, err = c.opts().Store.UsageBytes(c.ctx, c.user.ID)
	return u.QuotaBytes, used, err
}

// writeQuota writes STORAGE in units of 1024 octets (RFC 9208 5.1).
func (c *session) writeQuota(limit, used int64) {
	c.writef(`* QUOTA "" (STORAGE %d %d)`, (used+1023)/1024, limit/1024)
}
