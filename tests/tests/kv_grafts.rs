//! Grafts in a running `kv`: signed modules loaded over the graft control
//! channel take the block cache's policy points (`cache.evict`,
//! `cache.readahead`) while the server serves, and the data stays intact.
//! The block filter is not offered at run time (see `kv::server`).

mod kv;

use kv::control::{Controlled, value_of};
use kv::{fresh_disk, image};
use xtask::graft_client::{Client, Reply};

fn load(client: &mut Client, point: &str, grant: &str, sample: &str) -> Reply {
    let envelope = xtask::keys::seal(point, grant, &tests::grafts::sample(sample)).unwrap();
    client.load(point, &envelope).unwrap()
}

#[test]
fn a_keep_hot_graft_loaded_at_run_time_chooses_every_eviction() {
    let kv = Controlled::boot(&image(), &fresh_disk("grafts"));
    let mut client = Client::connect(&kv.control.to_string()).unwrap();
    let list = client.list().unwrap().json().unwrap();
    let points: Vec<&str> = list["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(points, ["cache.evict", "cache.readahead"], "{list}");

    let loaded = load(&mut client, "cache.evict", "context", "keep-hot");
    let id = loaded.json().unwrap()["graft"].as_u64().unwrap();
    assert!(
        load(&mut client, "cache.readahead", "maps", "strided-readahead").is_ok(),
        "{}",
        kv.console()
    );
    let refused = load(
        &mut client,
        "cache.filter",
        "context,context-write",
        "stream-cipher",
    );
    assert!(
        matches!(&refused, Reply::Err(m) if m.contains("no graft point")),
        "{refused:?}"
    );

    // More distinct data than the cache holds (about 7.5 MiB): the log's
    // blocks must be evicted, each written back first.
    let before = kv.info("rootstock_cache_evictions");
    let (keys, value_len) = (2500, 4096);
    kv.fill(keys, value_len);
    let evictions = kv.info("rootstock_cache_evictions") - before;
    assert!(evictions > 1000, "{evictions} evictions");
    let stats = client.stats(Some("cache.evict")).unwrap().json().unwrap();
    let graft = &stats["grafts"][0];
    assert_eq!(graft["id"].as_u64(), Some(id), "{stats}");
    assert_eq!(graft["calls"].as_u64(), Some(evictions), "{stats}");
    assert_eq!(graft["commits"].as_u64(), Some(evictions), "{stats}");
    for i in [0, keys / 2, keys - 1] {
        let key = format!("fill:{i}");
        let got = kv.cli(&["GET", &key]);
        assert_eq!(
            got.strip_suffix('\n'),
            Some(&*value_of(i, value_len)),
            "{key}"
        );
    }
    assert_eq!(kv.cli(&["DBSIZE"]).trim(), keys.to_string());
}
