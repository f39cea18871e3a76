package odometer

// CSVText returns s as a text cell of a CSV file, made safe to open in a
// spreadsheet: a cell that starts with '=', '+', '-', '@', a tab or a
// carriage return gets a single quote ' in front, so that Excel, LibreOffice
// and Google Sheets show it as text instead of evaluating it as a formula
// (OWASP's advice against CSV injection). Every other string is returned
// unchanged, and so is one that starts with the quote already: CSVText is
// idempotent. Subjects and group-by values come from events, which any
// holder of an ingest key can send, so every CSV that Odometer writes passes
// its text cells through CSVText; numeric cells (values, quantities, counts)
// are written as they are, since a number such as -5 is never a formula and
// must stay exact.
func CSVText(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
