//! The A/B update flow on a [`Device`] set up with slots: reconcile the recorded state with
//! the boot variables, write the inactive slot, switch the boot loader to it for a trial
//! boot, and commit it (`mark-good`) or learn that the boot loader rolled it back.
//!
//! The order that keeps every crash point safe: the slot is written, fsync'd and read back
//! before the boot variables change; the boot variables change in one backend write; the
//! state file records each step atomically, and every command starts by reconciling the
//! state file with the boot variables (which are the truth about what boots).
use super::config::SlotConfig;
use super::error::{DeviceError, DeviceResult};
use super::install_target::InstallTarget;
use super::lock::StateLock;
use super::session::{Device, InstallStep, Transfer};
use super::slot_installer::{read_back, SlotInstaller};
use super::slot_state::{Phase, ReleaseRecord, SlotHealth, SlotRecord, SlotState};
use crate::boot::{BootControl, BootVars, Slot};
use serde::Serialize;

/// What [`Device::update_slots`] did.
#[derive(Debug, Clone)]
pub enum SlotOutcome {
    /// Nothing newer for this device.
    UpToDate,
    /// The release was written to `slot` and the boot loader will try it at the next boot.
    RebootNeeded {
        /// The release.
        release: ReleaseRecord,
        /// How the image was obtained.
        transfer: Transfer,
    },
    /// A trial boot is pending or running; nothing is installed until it is committed or
    /// rolled back.
    TrialPending {
        /// The release on trial.
        release: ReleaseRecord,
        /// `pending-reboot` or `trial`.
        phase: Phase,
    },
}

/// What [`Device::mark_good`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkGood {
    /// The running slot was committed; its version, when known.
    Committed {
        /// The slot.
        slot: Slot,
        /// Its version.
        version: Option<String>,
    },
    /// The new slot is written but was not booted yet: nothing to commit.
    NotBootedYet {
        /// The slot waiting for a reboot.
        slot: Slot,
    },
    /// Nothing was pending.
    NothingPending,
}

/// The status of an A/B device, in the shape `ota-client status --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    /// The slot running now.
    pub booted: Slot,
    /// The committed slot.
    pub committed: Slot,
    /// Each slot.
    pub slots: SlotPair,
    /// The boot variables.
    pub boot: BootView,
    /// Where an update stands.
    pub update_state: &'static str,
    /// Versions that failed to boot.
    pub failed_versions: Vec<String>,
    /// The last error, if the last attempt failed.
    pub last_error: Option<String>,
}

/// The two slots' records.
#[derive(Debug, Clone, Serialize)]
pub struct SlotPair {
    /// Slot a.
    pub a: SlotView,
    /// Slot b.
    pub b: SlotView,
}

/// One slot in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct SlotView {
    /// Version, when known.
    pub version: Option<String>,
    /// sha256, when known.
    pub sha256: Option<String>,
    /// `committed`, `trial`, `written`, `failed` or `unknown`.
    pub state: SlotHealth,
}

/// The boot variables in `status`.
#[derive(Debug, Clone, Serialize)]
pub struct BootView {
    /// `a` or `b`.
    pub ota_slot: Slot,
    /// 0 or 1.
    pub upgrade_available: u8,
    /// Trial boots so far.
    pub bootcount: u32,
    /// Trial boots allowed.
    pub bootlimit: u32,
}

impl From<&SlotRecord> for SlotView {
    fn from(r: &SlotRecord) -> Self {
        SlotView {
            version: r.version.clone(),
            sha256: r.sha256.clone(),
            state: r.state,
        }
    }
}

impl From<&BootVars> for BootView {
    fn from(v: &BootVars) -> Self {
        BootView {
            ota_slot: v.ota_slot,
            upgrade_available: u8::from(v.upgrade_available),
            bootcount: v.bootcount,
            bootlimit: v.bootlimit,
        }
    }
}

impl Device {
    /// The slot configuration, or [`DeviceError::NotSlotMode`].
    fn slot_config(&self, what: &str) -> DeviceResult<SlotConfig> {
        self.config
            .slots
            .clone()
            .ok_or_else(|| DeviceError::NotSlotMode {
                state: self.state.root().to_path_buf(),
                what: format!("{what} needs A/B slots and this device installs to a single file"),
            })
    }

    /// The boot environment, writing through this device's storage where the backend is a
    /// plain file.
    fn boot_control(&self, slots: &SlotConfig) -> Box<dyn BootControl> {
        slots.boot_control.open_with(self.storage.clone())
    }

    /// The committed slot as a delta base (A/B mode), as the boot variables and the state
    /// file say.
    pub fn running_slot_base(&self) -> DeviceResult<Option<super::Base>> {
        let Some(slots) = &self.config.slots else {
            return Ok(None);
        };
        let committed = match SlotState::load(&self.state.slots())? {
            Some(s) => s.committed,
            None => self.boot_control(slots).read()?.ota_slot,
        };
        Ok(Some(super::Base::Slot(slots.path(committed).to_path_buf())))
    }

    /// Versions that failed to boot here (A/B mode; empty otherwise).
    pub fn failed_versions(&self) -> DeviceResult<Vec<String>> {
        if self.config.slots.is_none() {
            return Ok(Vec::new());
        }
        Ok(SlotState::load(&self.state.slots())?
            .map(|s| s.failed_versions)
            .unwrap_or_default())
    }

    fn save_slots(&self, state: &SlotState) -> DeviceResult<()> {
        state.save(&self.state.slots(), self.storage.as_ref())
    }

    fn write_boot(&self, boot: &dyn BootControl, vars: &BootVars) -> DeviceResult<()> {
        crate::crash_point::reached("boot-env");
        boot.write(vars)?;
        Ok(())
    }

    /// Bring `slots.json` in line with the boot variables after a reboot, a boot-loader
    /// fallback or an interrupted run. Returns the reconciled state and the variables.
    pub fn reconcile(&self) -> DeviceResult<(SlotState, BootVars)> {
        let slots = self.slot_config("reconcile")?;
        let boot = self.boot_control(&slots);
        let vars = boot.read()?;
        let mut state = match SlotState::load(&self.state.slots())? {
            Some(s) => s,
            None => SlotState::new(vars.ota_slot),
        };
        let before = state.clone();
        reconcile(&mut state, &vars);
        if state != before {
            tracing::info!(
                from = before.update_state.as_str(),
                to = state.update_state.as_str(),
                "reconciled the update state with the boot variables"
            );
            self.save_slots(&state)?;
        }
        Ok((state, vars))
    }

    /// The A/B update: reconcile; refuse while a trial is pending; check; write the inactive
    /// slot (from a patch against the committed slot when one fits), read it back; only
    /// then point the boot loader at it for a trial boot.
    pub fn update_slots(&mut self) -> DeviceResult<SlotOutcome> {
        let _lock = StateLock::acquire(&self.state)?;
        let slots = self.slot_config("update")?;
        let (mut state, _) = self.reconcile()?;
        if let (Some(release), Phase::PendingReboot | Phase::Trial) =
            (&state.release, state.update_state)
        {
            return Ok(SlotOutcome::TrialPending {
                release: release.clone(),
                phase: state.update_state,
            });
        }
        let target_slot = state.committed.other();
        let dest = SlotInstaller::new(
            slots.path(target_slot),
            slots.path(state.committed),
            slots.slot_size,
            self.storage.clone(),
        );
        // Before the network: a slot that can take no image at all.
        dest.check_destination()?;
        let Some(candidate) = self.check()? else {
            return Ok(SlotOutcome::UpToDate);
        };
        let release = ReleaseRecord::of(candidate.image(), target_slot);
        // A previous run wrote and verified this very release and was cut before the
        // switch: read it back again instead of writing it again.
        let resumed = state.update_state == Phase::SlotVerified
            && state.release.as_ref() == Some(&release)
            && read_back(slots.path(target_slot), candidate.image()).is_ok();
        let transfer = if resumed {
            tracing::info!(slot = %target_slot, "slot already written and verified; switching");
            Transfer::default()
        } else {
            // Refuse an unusable slot before anything is downloaded.
            dest.check(candidate.image())?;
            state.release = Some(release.clone());
            let result = self.install_into(&candidate, &dest, &mut |step| {
                state.enter(match step {
                    InstallStep::Downloading => Phase::Downloading,
                    InstallStep::Downloaded => Phase::Verified,
                    InstallStep::Writing => Phase::Writing,
                });
                if step == InstallStep::Writing {
                    // The slot's old content is going away.
                    *state.slots.get_mut(target_slot) = SlotRecord::unknown();
                }
                self.save_slots(&state)
            });
            match result {
                Ok(t) => t,
                Err(e) => {
                    let mut failed = state.clone();
                    failed.enter(Phase::Idle);
                    failed.last_error = Some(e.to_string());
                    if let Err(save) = self.save_slots(&failed) {
                        tracing::warn!("recording the failure: {save}");
                    }
                    return Err(e);
                }
            }
        };
        state.release = Some(release.clone());
        state.enter(Phase::SlotVerified);
        *state.slots.get_mut(target_slot) = SlotRecord::holding(&release, SlotHealth::Written);
        self.save_slots(&state)?;

        // The switch: one write of all four variables.
        let boot = self.boot_control(&slots);
        let current = boot.read()?;
        let trial = BootVars {
            ota_slot: target_slot,
            upgrade_available: true,
            bootcount: 0,
            bootlimit: current.bootlimit,
        };
        self.write_boot(boot.as_ref(), &trial)?;
        state.enter(Phase::PendingReboot);
        state.last_error = None;
        self.save_slots(&state)?;
        self.fix_image_line(&release.name)?;
        tracing::info!(slot = %target_slot, version = %release.version, "slot written; reboot to try it");
        self.set_last_transfer(transfer.clone());
        Ok(SlotOutcome::RebootNeeded { release, transfer })
    }

    /// Commit the running slot after a good boot: `upgrade_available=0`, `bootcount=0`, the
    /// slot and its version recorded as committed. Nothing pending is not an error.
    pub fn mark_good(&mut self) -> DeviceResult<MarkGood> {
        let _lock = StateLock::acquire(&self.state)?;
        let slots = self.slot_config("mark-good")?;
        let (mut state, vars) = self.reconcile()?;
        match state.update_state {
            Phase::PendingReboot => {
                if let Some(r) = &state.release {
                    return Ok(MarkGood::NotBootedYet { slot: r.slot });
                }
            }
            Phase::Trial => {}
            _ if vars.upgrade_available => {
                // A trial this state directory did not start (restored state, manual
                // switch): commit what runs, version unknown.
                tracing::warn!(slot = %vars.ota_slot, "committing a trial boot this client did not record");
            }
            _ => return Ok(MarkGood::NothingPending),
        }
        let running = vars.ota_slot;
        let boot = self.boot_control(&slots);
        let good = BootVars {
            upgrade_available: false,
            bootcount: 0,
            ..vars
        };
        self.write_boot(boot.as_ref(), &good)?;
        let release = state.release.clone().filter(|r| r.slot == running);
        commit(&mut state, running, release.as_ref());
        self.save_slots(&state)?;
        if let Some(r) = &release {
            self.record_installed(super::installed::Installed::stamped(
                &r.name,
                &r.version,
                &r.target,
                &r.sha256,
                r.length,
                slots.path(running),
            ))?;
        }
        Ok(MarkGood::Committed {
            slot: running,
            version: release.map(|r| r.version),
        })
    }

    /// The A/B status (reconciled first when the lock is free; as recorded otherwise).
    pub fn slot_status(&self) -> DeviceResult<SlotStatus> {
        let (state, vars) = match StateLock::acquire(&self.state) {
            Ok(_lock) => self.reconcile()?,
            Err(DeviceError::Busy { .. }) => {
                let slots = self.slot_config("status")?;
                let vars = self.boot_control(&slots).read()?;
                let state = SlotState::load(&self.state.slots())?
                    .unwrap_or_else(|| SlotState::new(vars.ota_slot));
                (state, vars)
            }
            Err(e) => return Err(e),
        };
        let booted = match state.update_state {
            // Switched, but still running the committed slot until the reboot.
            Phase::PendingReboot => state.committed,
            _ => vars.ota_slot,
        };
        Ok(SlotStatus {
            booted,
            committed: state.committed,
            slots: SlotPair {
                a: state.slots.get(Slot::A).into(),
                b: state.slots.get(Slot::B).into(),
            },
            boot: (&vars).into(),
            update_state: state.update_state.as_str(),
            failed_versions: state.failed_versions.clone(),
            last_error: state.last_error.clone(),
        })
    }
}

/// Check an A/B configuration before `init` writes anything: two distinct, existing slots;
/// a `file:`/`grub:` environment created when missing (never overwritten); readable, valid
/// boot variables. Returns the state of the freshly set up device: the slot the
/// environment selects is the running, committed slot.
pub(super) fn prepare_slots(slots: &SlotConfig) -> DeviceResult<SlotState> {
    slots.validate()?;
    slots.boot_control.init_env()?;
    let vars = slots.boot_control.open().read()?;
    Ok(SlotState::new(vars.ota_slot))
}

/// Record `slot` as committed, holding `release` when that is what it holds.
fn commit(state: &mut SlotState, slot: Slot, release: Option<&ReleaseRecord>) {
    let old = state.committed;
    if old != slot {
        let previous = state.slots.get_mut(old);
        if previous.state == SlotHealth::Committed {
            // Still a complete image, and the fallback of nothing any more.
            previous.state = SlotHealth::Written;
        }
    }
    *state.slots.get_mut(slot) = match release {
        Some(r) => SlotRecord::holding(r, SlotHealth::Committed),
        None if old == slot => SlotRecord {
            state: SlotHealth::Committed,
            ..state.slots.get(slot).clone()
        },
        None => SlotRecord {
            state: SlotHealth::Committed,
            ..SlotRecord::unknown()
        },
    };
    state.committed = slot;
    state.enter(Phase::Idle);
    state.last_error = None;
}

/// The state transitions the boot variables prove (the pure part of [`Device::reconcile`]).
pub(crate) fn reconcile(state: &mut SlotState, vars: &BootVars) {
    let release = state.release.clone();
    match (state.update_state, release) {
        (Phase::Idle, _) => {}
        (Phase::Downloading | Phase::Verified, _) => {
            // Nothing was written to a slot; the download resumes on the next update.
            state.enter(Phase::Idle);
            state.last_error = Some("the previous update was interrupted while downloading".into());
        }
        (Phase::Writing, release) => {
            let slot = release.map_or(state.committed.other(), |r| r.slot);
            *state.slots.get_mut(slot) = SlotRecord::unknown();
            state.enter(Phase::Idle);
            state.last_error = Some(format!(
                "the previous update was interrupted while writing slot {slot}"
            ));
        }
        (Phase::SlotVerified, Some(r)) if vars.ota_slot == r.slot && vars.upgrade_available => {
            // Cut between the switch and recording it.
            state.slots.get_mut(r.slot).state = SlotHealth::Written;
            state.enter(Phase::PendingReboot);
        }
        (Phase::SlotVerified, _) => {
            // Not switched: the next update reads the slot back and switches.
        }
        (Phase::PendingReboot | Phase::Trial, Some(r)) => {
            if vars.ota_slot == r.slot && vars.upgrade_available {
                if vars.bootcount > 0 {
                    // The boot loader counted a boot of the new slot: we run on trial.
                    state.slots.get_mut(r.slot).state = SlotHealth::Trial;
                    state.update_state = Phase::Trial;
                }
            } else if vars.ota_slot == r.slot {
                // Committed (a mark-good cut between the switch and recording it).
                commit(state, r.slot, Some(&r));
            } else {
                // The boot loader fell back to the committed slot: the release failed.
                state.fail(&r.version);
                state.slots.get_mut(r.slot).state = SlotHealth::Failed;
                let committed = state.committed;
                state.enter(Phase::Idle);
                state.last_error = Some(format!(
                    "version {} in slot {} did not boot; the boot loader fell back to slot {committed}",
                    r.version, r.slot
                ));
            }
        }
        (Phase::PendingReboot | Phase::Trial, None) => state.enter(Phase::Idle),
    }
}
