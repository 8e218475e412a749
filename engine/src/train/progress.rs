//! A terminal progress bar for [`fit`](super::fit) (indicatif): one bar per epoch with the loss,
//! samples per second and the time left, and a line of logs when each epoch ends. Hidden when
//! standard error is not a terminal.

use indicatif::{ProgressBar as Bar, ProgressDrawTarget, ProgressStyle};

use super::fit::{Control, Event};

/// Shows training progress; pass `&mut |e| bar.observe(e)` to `fit`.
#[derive(Default)]
pub struct ProgressBar {
    bar: Option<Bar>,
    epochs: usize,
}

impl ProgressBar {
    /// A bar drawn on standard error.
    pub fn new() -> ProgressBar {
        ProgressBar::default()
    }

    /// Handles one event of the training loop.
    pub fn observe(&mut self, event: &Event) -> Control {
        match event {
            Event::Begin { epochs, .. } => self.epochs = *epochs,
            Event::Batch {
                epoch,
                batch,
                batches,
                loss,
                samples_per_second,
            } => {
                let bar = self.bar.get_or_insert_with(|| {
                    let b =
                        Bar::with_draw_target(Some(*batches as u64), ProgressDrawTarget::stderr());
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b
                });
                bar.set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
                bar.set_position(*batch as u64 + 1);
                bar.set_message(format!("loss {loss:.4}, {samples_per_second:.0} samples/s"));
            }
            Event::Epoch { epoch, logs } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let line: Vec<String> = logs
                    .iter()
                    .filter(|(k, _)| *k != "lr")
                    .map(|(k, v)| format!("{k} {v:.4}"))
                    .collect();
                if console_visible() {
                    eprintln!("epoch {}/{}: {}", epoch + 1, self.epochs, line.join(", "));
                }
            }
            Event::End { .. } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
            }
        }
        Control::Continue
    }
}

fn console_visible() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
}
