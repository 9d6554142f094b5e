//! The `schedtest` image: shows which task the scheduler runs next, and
//! takes a scheduling graft on `sched.pick` through the serial console
//! (an image without networking).
//!
//! Its scheduler is `Overridable<Fifo>`: first-come first-served until a
//! graft replaces pick-next. Every 150 ms it spawns one round of six
//! tasks with different priorities and groups, all ready at once, and
//! prints the order in which they ran:
//! `schedtest: round N order b,d,c,f,a,e`. Under FIFO that is always the
//! spawn order, `a..f`; a priority graft changes it. `rounds=N` on the
//! command line sets how many rounds run (default 400) before it exits 0.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(not(test), no_main)]

extern crate alloc;

unikernel::image!(
    scheduler: unikernel::task::Overridable<unikernel::task::Fifo>,
    main: main
);

/// The tasks of a round: (label, priority, group).
pub const TASKS: [(char, u8, u8); 6] = [
    ('a', 1, 0),
    ('b', 5, 1),
    ('c', 3, 0),
    ('d', 5, 2),
    ('e', 1, 1),
    ('f', 3, 2),
];

#[cfg(target_os = "none")]
async fn main() -> i32 {
    use alloc::rc::Rc;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use unikernel::println;
    use unikernel::task::{Builder, sleep};
    use unikernel::time::Duration;

    let rounds = unikernel::cmdline::setting(unikernel::cmdline(), "rounds")
        .map_or(Some(400), |n| n.parse::<u32>().ok());
    let Some(rounds) = rounds else {
        println!("schedtest: bad rounds= value");
        return 2;
    };
    let grafts = graft_host::image_host();
    if let Err(e) = graft_host::sched::install(&grafts) {
        println!("schedtest: cannot declare sched.pick: {e}");
        return 3;
    }
    if let Err(e) = graft_channel::serial::spawn(&grafts) {
        println!("schedtest: no serial input: {e:?}");
        return 3;
    }
    println!("schedtest: ready");
    for round in 1..=rounds {
        let order = Rc::new(RefCell::new(String::new()));
        let handles: Vec<_> = TASKS
            .iter()
            .map(|&(label, priority, group)| {
                let order = order.clone();
                Builder::new()
                    .name("worker")
                    .priority(priority)
                    .group(group)
                    .spawn(async move {
                        let mut order = order.borrow_mut();
                        if !order.is_empty() {
                            order.push(',');
                        }
                        order.push(label);
                    })
            })
            .collect();
        for handle in handles {
            handle.await;
        }
        println!("schedtest: round {round} order {}", order.borrow());
        sleep(Duration::from_millis(150)).await;
    }
    0
}

#[cfg(not(target_os = "none"))]
async fn main() -> i32 {
    0
}
