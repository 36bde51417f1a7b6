//! SetForwardingPipelineConfig and GetForwardingPipelineConfig (§14, §15).
//!
//! The device config (`p4_device_config`) is kept as opaque bytes: the
//! dataplane's program is built in, and the P4Info decides which of its
//! tables the controller may use. Committing a new config clears every
//! table (`Control::reset`), except RECONCILE_AND_COMMIT of a P4Info
//! compatible with the current one (same objects and ids), which keeps them.
//!
//!
//! VERIFY_AND_SAVE starts a new forwarding state under the saved config, as
//! PI does: the tables are cleared and Writes and Reads use the saved
//! P4Info from then on; COMMIT makes it the committed config (returned by
//! GetForwardingPipelineConfig) and keeps what was written since the SAVE.
//! (The dataplane has one set of tables, so forwarding under the old state
//! stops at the SAVE rather than at the COMMIT.)

use std::sync::Arc;

use dataplane::Control;

use crate::binding::Binding;
use crate::error::P4rtError;
use crate::proto::p4::v1::{
    get_forwarding_pipeline_config_request::ResponseType,
    set_forwarding_pipeline_config_request::Action as SetAction, ForwardingPipelineConfig,
};
use crate::shadow::Shadow;

/// A verified config and its binding.
#[derive(Debug, Clone)]
pub struct Config {
    /// The config as the controller sent it.
    pub config: ForwardingPipelineConfig,
    /// Its P4Info bound to the dataplane.
    pub binding: Arc<Binding>,
}

/// The device's pipeline state: the committed and saved configs and the
/// one-shot entries written under the committed one.
#[derive(Debug, Default)]
pub struct DeviceState {
    /// The committed config.
    pub active: Option<Config>,
    /// A config saved by VERIFY_AND_SAVE, waiting for COMMIT.
    pub saved: Option<Config>,
    /// What the server keeps beside the dataplane (one-shots, metadata).
    pub shadow: Shadow,
}

impl DeviceState {
    /// The committed config, or `FAILED_PRECONDITION`.
    pub fn active(&self) -> Result<&Config, P4rtError> {
        self.active.as_ref().ok_or_else(|| {
            P4rtError::FailedPrecondition(
                "no forwarding pipeline config has been committed (SetForwardingPipelineConfig)"
                    .into(),
            )
        })
    }

    /// The config Writes and Reads use: the saved one between
    /// VERIFY_AND_SAVE and COMMIT, else the committed one; or
    /// `FAILED_PRECONDITION`.
    pub fn current(&self) -> Result<&Config, P4rtError> {
        match &self.saved {
            Some(saved) => Ok(saved),
            None => self.active(),
        }
    }

    fn verify(
        control: &Control,
        config: Option<ForwardingPipelineConfig>,
    ) -> Result<Config, P4rtError> {
        let config = config.ok_or_else(|| {
            P4rtError::InvalidArgument("SetForwardingPipelineConfig: config is missing".into())
        })?;
        let info = config.p4info.as_ref().ok_or_else(|| {
            P4rtError::InvalidArgument(
                "SetForwardingPipelineConfig: config.p4info is missing".into(),
            )
        })?;
        let binding = Binding::new(info, control.config())?;
        Ok(Config {
            config,
            binding: Arc::new(binding),
        })
    }

    fn commit(&mut self, control: &Control, config: Config) {
        control.reset();
        self.shadow.clear();
        self.active = Some(config);
        self.saved = None;
    }

    /// Carries out a SetForwardingPipelineConfig `action` (raw enum value).
    pub fn set(
        &mut self,
        control: &Control,
        action: i32,
        config: Option<ForwardingPipelineConfig>,
    ) -> Result<(), P4rtError> {
        match SetAction::try_from(action) {
            Ok(SetAction::Verify) => Self::verify(control, config).map(|_| ()),
            Ok(SetAction::VerifyAndSave) => {
                let c = Self::verify(control, config)?;
                control.reset();
                self.shadow.clear();
                self.saved = Some(c);
                Ok(())
            }
            Ok(SetAction::VerifyAndCommit) => {
                let c = Self::verify(control, config)?;
                self.commit(control, c);
                Ok(())
            }
            Ok(SetAction::Commit) => {
                // The state written since VERIFY_AND_SAVE is kept.
                let c = self.saved.take().ok_or_else(|| {
                    P4rtError::FailedPrecondition(
                        "COMMIT: no config was saved (VERIFY_AND_SAVE first)".into(),
                    )
                })?;
                self.active = Some(c);
                Ok(())
            }
            Ok(SetAction::ReconcileAndCommit) => {
                let c = Self::verify(control, config)?;
                match self.saved.as_ref().or(self.active.as_ref()) {
                    None => self.commit(control, c),
                    Some(old) => {
                        old.binding.compatible_with(&c.binding).map_err(|why| {
                            P4rtError::FailedPrecondition(format!(
                                "RECONCILE_AND_COMMIT: cannot keep the forwarding state: {why}"
                            ))
                        })?;
                        self.active = Some(c);
                        self.saved = None;
                    }
                }
                Ok(())
            }
            Ok(SetAction::Unspecified) | Err(_) => Err(P4rtError::InvalidArgument(format!(
                "SetForwardingPipelineConfig: action {action} is not a valid action"
            ))),
        }
    }

    /// The committed config, trimmed to `response_type` (raw enum value).
    pub fn get(&self, response_type: i32) -> Result<ForwardingPipelineConfig, P4rtError> {
        let c = &self.active()?.config;
        let cookie = c.cookie;
        Ok(match ResponseType::try_from(response_type) {
            Ok(ResponseType::All) => c.clone(),
            Ok(ResponseType::CookieOnly) => ForwardingPipelineConfig {
                cookie,
                ..Default::default()
            },
            Ok(ResponseType::P4infoAndCookie) => ForwardingPipelineConfig {
                p4info: c.p4info.clone(),
                cookie,
                ..Default::default()
            },
            Ok(ResponseType::DeviceConfigAndCookie) => ForwardingPipelineConfig {
                p4_device_config: c.p4_device_config.clone(),
                cookie,
                ..Default::default()
            },
            Err(_) => {
                return Err(P4rtError::InvalidArgument(format!(
                    "GetForwardingPipelineConfig: response_type {response_type} is not valid"
                )))
            }
        })
    }
}
