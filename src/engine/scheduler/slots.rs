//! Placing attempts on worker slots: the next queued attempt into each idle slot, one more
//! waiting behind each running attempt, and taking waiting ones back when a slot runs dry
//! or the run stops.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Running, Scheduler};
use crate::engine::launcher::{AttemptOrder, Launcher};
use crate::event::AttemptKey;

impl<L: Launcher> Scheduler<L> {
    /// Give every idle slot the next queued attempt, or one still waiting behind another
    /// slot's running attempt.
    pub(super) fn start_into_free_slots(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        for i in 0..self.slots.len() {
            let plan = self.slots[i];
            if plan.current.is_some() || plan.waiting.is_some() {
                continue;
            }
            let slot = i + 1;
            let order = match self.queue.pop_front() {
                Some((index, attempt)) => self.order(index, attempt, slot),
                None => match self.take_back_a_waiting_order() {
                    Some(order) => AttemptOrder {
                        slot,
                        core: self.core_of(slot),
                        ..order
                    },
                    None => return,
                },
            };
            self.make_current(slot, order.key);
            self.launch(order);
        }
    }

    /// Queue the next attempt behind each running one, so the slot needs no round trip.
    pub(super) fn queue_behind_running(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        for i in 0..self.slots.len() {
            let plan = self.slots[i];
            if plan.current.is_none() || plan.waiting.is_some() {
                continue;
            }
            let Some((index, attempt)) = self.queue.pop_front() else {
                return;
            };
            let order = self.order(index, attempt, i + 1);
            self.slots[i].waiting = Some(order.key);
            self.launch(order);
        }
    }

    fn order(&self, index: usize, attempt: u32, slot: usize) -> AttemptOrder {
        let task = Arc::clone(&self.tasks[index]);
        AttemptOrder {
            key: AttemptKey {
                seq: task.seq,
                attempt,
            },
            task,
            slot,
            core: self.core_of(slot),
        }
    }

    /// The core `slot` is pinned to, if pinning.
    fn core_of(&self, slot: usize) -> Option<usize> {
        self.config.pin.then(|| (slot - 1) % self.cores)
    }

    fn launch(&mut self, order: AttemptOrder) {
        self.launcher.launch(order);
    }

    /// Retract an order waiting behind another slot's attempt, if one has not started yet.
    fn take_back_a_waiting_order(&mut self) -> Option<AttemptOrder> {
        for i in 0..self.slots.len() {
            if self.slots[i].waiting.is_none() {
                continue;
            }
            if let Some(order) = self.launcher.retract(i + 1) {
                self.slots[i].waiting = None;
                return Some(order);
            }
        }
        None
    }

    /// Take back every waiting order and put it at the front of the queue.
    pub(super) fn return_waiting_orders(&mut self) {
        for i in (0..self.slots.len()).rev() {
            if self.slots[i].waiting.is_none() {
                continue;
            }
            if let Some(order) = self.launcher.retract(i + 1) {
                self.slots[i].waiting = None;
                self.queue
                    .push_front((order.task.seq - 1, order.key.attempt));
            }
        }
    }

    /// `key` becomes the attempt of `slot`.
    pub(super) fn make_current(&mut self, slot: usize, key: AttemptKey) {
        let plan = &mut self.slots[slot - 1];
        if plan.waiting == Some(key) {
            plan.waiting = None;
        }
        plan.current = Some(key);
        let task = &self.tasks[key.seq - 1];
        self.running.entry(key).or_insert(Running {
            slot,
            pid: None,
            timeout: task.timeout.or(self.config.timeout),
            deadline: None,
            kill: None,
            killed_hard: false,
            cores: BTreeSet::new(),
        });
    }

    /// The slot `key` was handed to, as current or waiting.
    pub(super) fn slot_of(&self, key: AttemptKey) -> Option<usize> {
        self.slots
            .iter()
            .position(|p| p.current == Some(key) || p.waiting == Some(key))
            .map(|i| i + 1)
    }
}
