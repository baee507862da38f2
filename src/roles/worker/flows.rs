//! The executor's input handling (spec §4.5): `ADD_INPUT` and `REMOVE_INPUT`, and keeping a running task's
//! broker subscriptions equal to its inputs (inputs that arrive while a task launches are subscribed once the
//! launch is done; a failed subscription is retried with the next heartbeat).
//!
//! Must not: call the broker other than through the launcher's [`super::inputs::TaskBroker`].

use super::executor::{Executor, Phase};
use super::lifecycle::same_input;
use crate::model::FlowInfo;

impl Executor {
    /// `ADD_INPUT`: subscribed now when the task runs, else when its launch completes.
    pub async fn add_input(&mut self, flow: FlowInfo) {
        if !self.fence("ADD_INPUT", &flow.task_instance_id, flow.epoch) {
            return;
        }
        let Some(input) = flow.input_stream else {
            tracing::warn!(task = %flow.task_instance_id, "ADD_INPUT without an input stream; ignored");
            return;
        };
        let Some(task) = self.tasks.get_mut(&flow.task_instance_id) else {
            tracing::warn!(task = %flow.task_instance_id, input = %input.id, "ADD_INPUT for a task not held; ignored");
            return;
        };
        if task.spec.inputs.iter().any(|held| same_input(held, &input)) {
            tracing::debug!(task = %task.spec.id, input = %input.id, "input already held");
            return;
        }
        task.spec.inputs.push(input);
        self.sync_subscriptions(&flow.task_instance_id).await;
    }

    /// `REMOVE_INPUT`.
    pub async fn remove_input(&mut self, flow: FlowInfo) {
        if !self.fence("REMOVE_INPUT", &flow.task_instance_id, flow.epoch) {
            return;
        }
        let Some(input) = flow.input_stream else { return };
        let Some(task) = self.tasks.get_mut(&flow.task_instance_id) else {
            tracing::warn!(task = %flow.task_instance_id, input = %input.id, "REMOVE_INPUT for a task not held; ignored");
            return;
        };
        let before = task.spec.inputs.len();
        task.spec.inputs.retain(|held| !same_input(held, &input));
        if before == task.spec.inputs.len() {
            tracing::warn!(task = %flow.task_instance_id, input = %input.id, "REMOVE_INPUT for an unknown input");
        }
        self.sync_subscriptions(&flow.task_instance_id).await;
    }

    /// Makes a running task's subscriptions match its inputs.
    pub(super) async fn sync_subscriptions(&mut self, id: &str) {
        let Some(task) = self.tasks.get_mut(id) else { return };
        let Phase::Running(run) = &mut task.phase else { return };
        let broker = self.launcher.broker.clone();
        let mut kept = Vec::new();
        for (input, sid) in std::mem::take(&mut run.subscriptions) {
            if task.spec.inputs.iter().any(|wanted| same_input(wanted, &input)) {
                kept.push((input, sid));
            } else if let Err(error) = broker.unsubscribe(&sid).await {
                tracing::warn!(task = id, input = %input.id, %error, "cannot unsubscribe a removed input");
            }
        }
        run.subscriptions = kept;
        for input in &task.spec.inputs {
            if run.subscriptions.iter().any(|(held, _)| same_input(held, input)) {
                continue;
            }
            match broker.subscribe(id, input, &run.ref_url).await {
                Ok(sid) => run.subscriptions.push((input.clone(), sid)),
                Err(error) => {
                    tracing::warn!(task = id, input = %input.id, %error, "cannot subscribe an input; retried later")
                }
            }
        }
    }

    /// Retries missing subscriptions of running tasks (called with each heartbeat).
    pub async fn resync_all(&mut self) {
        let missing: Vec<String> = self
            .tasks
            .values()
            .filter(|t| matches!(&t.phase, Phase::Running(run) if run.subscriptions.len() != t.spec.inputs.len()))
            .map(|t| t.spec.id.clone())
            .collect();
        for id in missing {
            self.sync_subscriptions(&id).await;
        }
    }
}
