//! The name a server instance goes by when it is not given one.

/// The host name, which tells the instances behind a load balancer apart
/// unless they are named otherwise; `echo-server` if the system has none
/// that is valid text.
pub(crate) fn default_instance() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "echo-server".to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_instance_is_never_empty() {
        assert!(!super::default_instance().is_empty());
    }
}
