//! Placing attempts on worker slots: the next queued attempt into each idle slot, more
//! waiting behind each running attempt only where the launcher takes them (persistent
//! workers of tiny items), and taking waiting ones back when a slot runs dry or the run
//! stops.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{Running, Scheduler};
use crate::engine::launcher::{AttemptOrder, Launcher};
use crate::event::AttemptKey;

impl<L: Launcher> Scheduler<'_, L> {
    /// Give every idle slot the next queued attempt, or one still waiting behind another
    /// slot's running attempt.
    pub(super) fn start_into_free_slots(&mut self) {
        let now = std::time::Instant::now();
        for plan in &mut self.slots {
            if !plan.is_resting(now) {
                plan.resting_until = None;
            }
        }
        if self.stopping.is_some() {
            return;
        }
        for i in 0..self.slots.len() {
            if !self.slots[i].is_idle() || self.slots[i].is_resting(now) {
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
                    None => return self.retire_idle_slots(),
                },
            };
            self.make_current(slot, order.key);
            self.launch(order);
        }
    }

    /// Nothing is left to start: let the launcher free what the idle slots hold.
    fn retire_idle_slots(&mut self) {
        for i in 0..self.slots.len() {
            if self.slots[i].is_idle() {
                self.launcher.retire(i + 1);
            }
        }
    }

    /// Queue the next attempts behind each running one, as many as the launcher takes
    /// (persistent workers of tiny items; none for processes), so the slot needs no round
    /// trip: level by level (every slot's first waiting order, then every slot's second,
    /// ...), so that tasks still start in about their listed order. Only while no slot is
    /// idle: an idle slot takes the next task itself.
    pub(super) fn queue_behind_running(&mut self) {
        if self.stopping.is_some()
            || self.queue.is_empty()
            || self.slots.iter().any(|p| p.is_idle())
        {
            return;
        }
        let depth = self.launcher.depth();
        let Some(lowest) = self
            .slots
            .iter()
            .filter(|p| p.current.is_some())
            .map(|p| p.waiting.len())
            .min()
        else {
            return;
        };
        for level in lowest..depth {
            for i in 0..self.slots.len() {
                if self.slots[i].current.is_none() || self.slots[i].waiting.len() != level {
                    continue;
                }
                let Some((index, attempt)) = self.queue.pop_front() else {
                    return;
                };
                let order = self.order(index, attempt, i + 1);
                self.slots[i].waiting.push_back(order.key);
                self.launch(order);
            }
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

    /// Retract an order waiting behind another slot's attempt, if one has not started yet:
    /// from the slot with the most waiting.
    fn take_back_a_waiting_order(&mut self) -> Option<AttemptOrder> {
        let mut by_length: Vec<usize> = (0..self.slots.len())
            .filter(|&i| !self.slots[i].waiting.is_empty())
            .collect();
        by_length.sort_by_key(|&i| std::cmp::Reverse(self.slots[i].waiting.len()));
        by_length.into_iter().find_map(|i| self.retract_from(i + 1))
    }

    /// Take back the last order waiting on `slot`, if the launcher still has it.
    fn retract_from(&mut self, slot: usize) -> Option<AttemptOrder> {
        let order = self.launcher.retract(slot)?;
        let waiting = &mut self.slots[slot - 1].waiting;
        if let Some(at) = waiting.iter().rposition(|k| *k == order.key) {
            waiting.remove(at);
        }
        Some(order)
    }

    /// Take back every waiting order and put it at the front of the queue.
    pub(super) fn return_waiting_orders(&mut self) {
        for slot in (1..=self.slots.len()).rev() {
            self.return_waiting_orders_of(slot);
        }
    }

    /// Take back the orders waiting on `slot` that the launcher still has, to the front of
    /// the queue in their order.
    pub(super) fn return_waiting_orders_of(&mut self, slot: usize) {
        while !self.slots[slot - 1].waiting.is_empty() {
            let Some(order) = self.retract_from(slot) else {
                return;
            };
            self.queue
                .push_front((order.task.seq - 1, order.key.attempt));
        }
    }

    /// `key` becomes the attempt of `slot`.
    pub(super) fn make_current(&mut self, slot: usize, key: AttemptKey) {
        let plan = &mut self.slots[slot - 1];
        if plan.current != Some(key) {
            if plan.waiting.front() == Some(&key) {
                plan.waiting.pop_front();
            } else if let Some(at) = plan.waiting.iter().position(|k| *k == key) {
                plan.waiting.remove(at);
            }
            plan.current = Some(key);
        }
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
        // Almost always the current attempt or the next one of some slot.
        let near = self
            .slots
            .iter()
            .position(|p| p.current == Some(key) || p.waiting.front() == Some(&key));
        near.or_else(|| self.slots.iter().position(|p| p.waiting.contains(&key)))
            .map(|i| i + 1)
    }
}
