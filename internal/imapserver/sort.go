package imapserver

func (c *session) cmdSort(tag string, p *parser) error {
	return bad("", "SORT not implemented yet")
}

func (c *session) cmdThread(tag string, p *parser) error {
	return bad("", "THREAD not implemented yet")
}
