//! The API server's syntax rules for names, label keys and label values.
//!
//! Each function returns the messages the API server would give (empty when
//! valid), so callers can attach them to a field path.

const QNAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const DNS1123_LABEL_MAX: usize = 63;
const PORT_NAME_MAX: usize = 15;

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`
fn is_qualified_name_part(s: &str) -> bool {
    let mut chars = s.chars();
    let (Some(first), Some(last)) = (chars.next(), s.chars().last()) else {
        return false;
    };
    is_alnum(first)
        && is_alnum(last)
        && s.chars()
            .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`
fn is_dns1123_label_syntax(s: &str) -> bool {
    let lower_alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (s.chars().next(), s.chars().last()) {
        (Some(f), Some(l)) => {
            lower_alnum(f) && lower_alnum(l) && s.chars().all(|c| lower_alnum(c) || c == '-')
        }
        _ => false,
    }
}

/// A DNS-1123 label: namespace names.
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_dns1123_label_syntax(s) {
        errs.push(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character"
                .into(),
        );
    }
    errs
}

/// A DNS-1123 subdomain: NetworkPolicy names and label key prefixes.
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errs.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if s.is_empty() || !s.split('.').all(is_dns1123_label_syntax) {
        errs.push(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
             '-' or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    errs
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain.
pub fn label_key(s: &str) -> Vec<String> {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|m| format!("prefix part {m}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else {
        if name.len() > QNAME_MAX {
            errs.push(format!(
                "name part must be no more than {QNAME_MAX} characters"
            ));
        }
        if !is_qualified_name_part(name) {
            errs.push(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start \
                 and end with an alphanumeric character"
                    .into(),
            );
        }
    }
    errs
}

/// A label value: empty, or up to 63 characters of the qualified-name
/// alphabet.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.is_empty() {
        return errs;
    }
    if s.len() > LABEL_VALUE_MAX {
        errs.push(format!("must be no more than {LABEL_VALUE_MAX} characters"));
    }
    if !is_qualified_name_part(s) {
        errs.push(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' \
             or '.', and must start and end with an alphanumeric character"
                .into(),
        );
    }
    errs
}

/// An IANA service name, as named ports are: 1-15 characters of `[a-z0-9-]`,
/// at least one letter, no leading, trailing or double hyphen.
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.is_empty() || s.len() > PORT_NAME_MAX {
        errs.push(format!("must be no more than {PORT_NAME_MAX} characters"));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        assert!(label_key("app").is_empty());
        assert!(label_key("kubernetes.io/metadata.name").is_empty());
        assert!(!label_key("-app").is_empty());
        assert!(!label_key("Bad_Prefix/app").is_empty());
        assert!(!label_key("/app").is_empty());
        assert!(!label_key(&"a".repeat(64)).is_empty());
    }

    #[test]
    fn label_values() {
        assert!(label_value("").is_empty());
        assert!(label_value("v1.2_x-Y").is_empty());
        assert!(!label_value("has space").is_empty());
        assert!(!label_value("-lead").is_empty());
    }

    #[test]
    fn port_names() {
        assert!(port_name("http").is_empty());
        assert!(port_name("grpc-web2").is_empty());
        assert!(!port_name("80").is_empty(), "needs a letter");
        assert!(!port_name("a--b").is_empty());
        assert!(!port_name("HTTP").is_empty());
        assert!(!port_name("averyveryverylongname").is_empty());
    }

    #[test]
    fn subdomains_and_labels() {
        assert!(dns1123_subdomain("allow-frontend.v2").is_empty());
        assert!(!dns1123_subdomain("Allow").is_empty());
        assert!(dns1123_label("frontend").is_empty());
        assert!(!dns1123_label("front.end").is_empty());
    }
}
