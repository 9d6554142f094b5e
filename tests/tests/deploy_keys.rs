//! Keys for real deployments: an image built to trust only a given public
//! key (`ROOTSTOCK_GRAFT_DEV_KEY=off ROOTSTOCK_GRAFT_KEYS=<key>`, here
//! through `xtask::images::build_trusting`) refuses grafts signed with the
//! development key, and takes them signed with its own.

use ed25519_compact::{KeyPair, Seed};
use tests::Qemu;
use tests::grafts::{Control, refusal, sample, sealed};
use tests::guest::Guest;

const CONTROL: u16 = 7070;
const GRANT: &str = "context,counters";

#[test]
fn an_image_that_trusts_a_deployment_key_refuses_the_development_key() {
    let deployment = KeyPair::from_seed(Seed::new([42; 32]));
    let public = hex::encode(deployment.pk.as_ref());
    assert_ne!(public, xtask::keys::public_hex().unwrap());
    let elf = xtask::images::build_trusting(
        &["http".to_string()],
        &xtask::root().join("target/itest-deploy"),
        &public,
    )
    .expect("building http for a deployment key")
    .remove(0);
    let guest = Guest::start_ports(Qemu::new(elf), &[80, CONTROL], "http: serving on");
    let mut control = Control::connect(&guest, guest.addr_of(CONTROL));
    let filter = sample("packet-filter");

    let by_dev = sealed("net.rx", GRANT, &filter);
    let why = refusal(&control.load("net.rx", &by_dev)).to_string();
    assert!(why.contains("does not trust"), "{why}");
    assert_eq!(control.installed(), 0);

    let by_deployment = xtask::keys::seal_with(
        &deployment.sk,
        xtask::keys::next_sequence(),
        "net.rx",
        GRANT,
        &filter,
    )
    .unwrap();
    control.load_ok("net.rx", &by_deployment);
    assert_eq!(control.installed(), 1);
}
