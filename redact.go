package gearbridge

import "regexp"

// userinfoPassword matches the password of a URL's user info,
// scheme://user:PASSWORD@host, which a Jenkins master's URL may carry.
var userinfoPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*):[^\s/@]*@`)

// RedactURLPasswords hides the passwords of the URLs in s, as
// url.URL.Redacted does: logs, errors and the status page never show them.
func RedactURLPasswords(s string) string {
	return userinfoPassword.ReplaceAllString(s, "${1}:xxxxx@")
}
