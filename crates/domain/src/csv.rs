//! SPEC section 7's CSV rule, for every CSV the service writes (the ledger export, the billing
//! page's CSV, `credits report liability --format csv`): RFC 4180 quoting, and a text cell that a
//! spreadsheet would run as a formula (it begins with `=`, `+`, `-`, `@`, a tab or a carriage
//! return) written with a leading `'`. Numbers are written as they are, sign included.

/// One CSV table being written, row by row.
#[derive(Debug, Default)]
pub struct Csv {
    out: String,
    row_open: bool,
}

impl Csv {
    /// A table whose first row is `header` (plain names: written as text cells).
    pub fn with_header(header: &[&str]) -> Csv {
        let mut csv = Csv::default();
        for name in header {
            csv.text(name);
        }
        csv.end_row();
        csv
    }

    fn separate(&mut self) {
        if self.row_open {
            self.out.push(',');
        }
        self.row_open = true;
    }

    /// A text cell: neutralised, then quoted as RFC 4180 says when it needs to be.
    pub fn text(&mut self, value: &str) -> &mut Csv {
        self.separate();
        let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
        let quoted = value.contains([',', '"', '\r', '\n']);
        if quoted {
            self.out.push('"');
        }
        if formula {
            self.out.push('\'');
        }
        if quoted {
            self.out.push_str(&value.replace('"', "\"\""));
            self.out.push('"');
        } else {
            self.out.push_str(value);
        }
        self
    }

    /// A number cell (a signed credits figure, minor units): as it is.
    pub fn number(&mut self, value: i64) -> &mut Csv {
        self.separate();
        self.out.push_str(&value.to_string());
        self
    }

    pub fn end_row(&mut self) -> &mut Csv {
        self.out.push_str("\r\n");
        self.row_open = false;
        self
    }

    /// What has been written, taken (the table goes on empty: an export streams in chunks).
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.out)
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> String {
        let mut csv = Csv::default();
        for c in cells {
            csv.text(c);
        }
        csv.end_row();
        csv.finish()
    }

    #[test]
    fn a_cell_a_spreadsheet_would_run_gets_a_leading_quote() {
        for (given, written) in [
            ("=1+2", "'=1+2"),
            ("+1+2", "'+1+2"),
            ("-1+2", "'-1+2"),
            ("@SUM(1,2)", "\"'@SUM(1,2)\""),
            ("\tx", "'\tx"),
            ("\rx", "\"'\rx\""),
            ("=HYPERLINK(\"http://x\",\"y\")", "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""),
        ] {
            assert_eq!(row(&[given]), format!("{written}\r\n"), "{given:?}");
        }
    }

    #[test]
    fn plain_text_is_quoted_only_when_rfc_4180_needs_it() {
        assert_eq!(
            row(&["a", "b c", "x,y", "say \"hi\"", "two\nlines"]),
            "a,b c,\"x,y\",\"say \"\"hi\"\"\",\"two\nlines\"\r\n"
        );
        assert_eq!(row(&["a=1", "1-2"]), "a=1,1-2\r\n", "only the first character counts");
    }

    #[test]
    fn numbers_keep_their_sign() {
        let mut csv = Csv::with_header(&["name", "credits"]);
        csv.text("debit").number(-12).end_row();
        assert_eq!(csv.finish(), "name,credits\r\ndebit,-12\r\n");
    }
}
