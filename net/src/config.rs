//! How the interface gets its address: static (QEMU's user network by
//! default) or DHCP, optionally from the kernel command line.

use core::net::Ipv4Addr;

/// IPv4 configuration of the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Config {
    /// A fixed address, prefix length and optional default gateway.
    Static {
        address: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    },
    /// Ask a DHCP server (QEMU's user network has one).
    Dhcp,
}

/// The stack's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub ipv4: Ipv4Config,
    /// Seeds TCP initial sequence numbers and ephemeral ports; should differ
    /// between boots.
    pub random_seed: u64,
    /// The image's control port: TCP to it (and ARP) reaches the stack
    /// before the receive policy is asked ([`crate::management`]).
    /// `None`: every frame goes through the policy.
    pub management_port: Option<u16>,
}

/// QEMU's user network (`-netdev user`): the guest is 10.0.2.15/24 and the
/// gateway 10.0.2.2.
pub const QEMU_USER: Ipv4Config = Ipv4Config::Static {
    address: Ipv4Addr::new(10, 0, 2, 15),
    prefix: 24,
    gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
};

impl Default for Config {
    fn default() -> Self {
        Config {
            ipv4: QEMU_USER,
            random_seed: 0x5eed_f00d_2007,
            management_port: None,
        }
    }
}

/// A command-line setting that could not be understood (the user's mistake).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError<'a> {
    pub key: &'static str,
    pub value: &'a str,
}

impl core::fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "bad value for {}=: {:?}", self.key, self.value)
    }
}

impl Config {
    /// The defaults, changed by `ip=dhcp`, `ip=A.B.C.D/N` and
    /// `gw=A.B.C.D` (or `gw=none`) on the kernel command line. Other words
    /// are ignored.
    pub fn from_cmdline(cmdline: &str) -> Result<Config, ConfigError<'_>> {
        use unikernel::cmdline::setting;
        let mut config = Config::default();
        if let Some(value) = setting(cmdline, "ip") {
            config.ipv4 = parse_ip(value).ok_or(ConfigError { key: "ip", value })?;
        }
        let gateway_override = match setting(cmdline, "gw") {
            None => None,
            Some("none") => Some(None),
            Some(value) => Some(Some(
                value
                    .parse::<Ipv4Addr>()
                    .map_err(|_| ConfigError { key: "gw", value })?,
            )),
        };
        if let (Some(new), Ipv4Config::Static { gateway, .. }) =
            (gateway_override, &mut config.ipv4)
        {
            *gateway = new;
        }
        Ok(config)
    }
}

fn parse_ip(value: &str) -> Option<Ipv4Config> {
    if value == "dhcp" {
        return Some(Ipv4Config::Dhcp);
    }
    let (address, prefix) = value.split_once('/').unwrap_or((value, "24"));
    let address: Ipv4Addr = address.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let gateway = match QEMU_USER {
        Ipv4Config::Static { gateway, .. } => gateway,
        Ipv4Config::Dhcp => None,
    };
    Some(Ipv4Config::Static {
        address,
        prefix,
        gateway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_qemu_user_networking() {
        let config = Config::from_cmdline("").unwrap();
        assert_eq!(config.ipv4, QEMU_USER);
    }

    #[test]
    fn dhcp_and_static_addresses() {
        assert_eq!(
            Config::from_cmdline("loglevel=debug ip=dhcp").unwrap().ipv4,
            Ipv4Config::Dhcp
        );
        assert_eq!(
            Config::from_cmdline("ip=192.168.7.9/16 gw=none")
                .unwrap()
                .ipv4,
            Ipv4Config::Static {
                address: Ipv4Addr::new(192, 168, 7, 9),
                prefix: 16,
                gateway: None,
            }
        );
        assert_eq!(
            Config::from_cmdline("gw=10.0.2.1").unwrap().ipv4,
            Ipv4Config::Static {
                address: Ipv4Addr::new(10, 0, 2, 15),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 1)),
            }
        );
    }

    #[test]
    fn bad_values_are_reported_not_guessed() {
        assert_eq!(
            Config::from_cmdline("ip=10.0.2/24"),
            Err(ConfigError {
                key: "ip",
                value: "10.0.2/24"
            })
        );
        assert!(Config::from_cmdline("ip=10.0.2.15/33").is_err());
        assert!(Config::from_cmdline("gw=gateway").is_err());
    }
}
