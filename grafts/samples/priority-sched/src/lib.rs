//! Group/priority scheduling for the `sched.pick` replace point:
//! `graft_main(n) -> index` with `n` ready tasks as context, 4 bytes each
//! (`[priority, group, 0, 0]`). It runs the highest priority; among tasks of
//! that priority it serves groups round-robin (the last group served is
//! kept in map 0), so one busy group cannot starve another.
#![cfg_attr(any(target_arch = "wasm32", target_os = "none"), no_std)]

use graft_sdk::{context_len, context_read, map_get, map_put};

/// Chooses among `(priority, group)` pairs given the last group served.
pub fn choose(tasks: impl Iterator<Item = (u8, u8)> + Clone, last_group: u8) -> Option<usize> {
    let best = tasks.clone().map(|(p, _)| p).max()?;
    let candidates = tasks.enumerate().filter(|(_, (p, _))| *p == best);
    // The first task whose group comes after the last one served (cyclically).
    candidates
        .min_by_key(|(i, (_, g))| (g.wrapping_sub(last_group).wrapping_sub(1), *i))
        .map(|(i, _)| i)
}

fn pick(n: i32) -> i32 {
    let n = (n.max(0) as usize).min(context_len() / 4).min(256);
    let mut table = [0u8; 1024];
    context_read(0, &mut table[..n * 4]);
    let tasks = table[..n * 4].chunks(4).map(|t| (t[0], t[1]));
    let last = map_get(0, 0, 255) as u8;
    match choose(tasks.clone(), last) {
        Some(i) => {
            map_put(0, 0, i64::from(table[i * 4 + 1]));
            i as i32
        }
        None => 0,
    }
}

graft_sdk::graft_main!(pick: fn(n: i32) -> i32);

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn highest_priority_first_then_groups_in_turn() {
        let tasks = [(1, 0), (5, 1), (5, 2), (5, 1)];
        assert_eq!(choose(tasks.iter().copied(), 255), Some(1)); // group 1 (after 255 wraps to 0..)
        assert_eq!(choose(tasks.iter().copied(), 1), Some(2)); // then group 2
        assert_eq!(choose(tasks.iter().copied(), 2), Some(1)); // back to group 1
        assert_eq!(choose([].iter().copied(), 0), None);
    }
}
