// Package directory answers who a recipient is: local domains, users, aliases (several targets, catch-all,
// domain mapping like sendmail's virtusertable), and the access table. It reads the DirectoryStore on every call,
// so a running server sees changes made by the CLI at once.
package directory
