;; sched.pick: a loop over the ready tasks, picking the last one.
(module
  (memory (export "memory") 1)
  (func (export "graft_main") (param $ready i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $ready)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (select (i32.sub (local.get $i) (i32.const 1)) (i32.const 0) (local.get $i))))
