//! The XDP program that steers an interface's frames to the port's AF_XDP
//! sockets, loaded and attached with the bpf(2) system call alone (no
//! libbpf, no object file, no compiler).
//!
//! Three kernel objects, all closed on drop:
//! - an `XSKMAP` with one slot per queue, holding the socket bound to that
//!   queue;
//! - the program [`PROGRAM`]: `return bpf_redirect_map(&xsks,
//!   ctx->rx_queue_index, XDP_PASS);` — frames of a queue with a socket go
//!   to it, all others (no socket in the slot) go on to the kernel stack;
//! - a BPF link attaching the program to the interface (`BPF_LINK_CREATE`,
//!   attach type `BPF_XDP`), in driver (native) or generic (skb) mode.
//!   Closing the link's fd detaches the program; nothing is pinned, so a
//!   crashed process leaves nothing behind either.
//!
//! Attribute layouts are `union bpf_attr`'s members in `linux/bpf.h`; the
//! tests check our offsets against the C header's.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::XdpMode;

// linux/bpf.h: commands, map and program types, attach type, helper id.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_ANY: u64 = 0;
// linux/if_link.h
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
// enum xdp_action
const XDP_PASS: i32 = 2;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// One BPF instruction (`struct bpf_insn`): opcode, destination register
/// in the low nibble and source register in the high nibble of `regs`, a
/// signed offset and a signed immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BpfInsn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

// Opcode parts (linux/bpf_common.h, linux/bpf.h).
const BPF_LD: u8 = 0x00;
const BPF_LDX: u8 = 0x01;
const BPF_JMP: u8 = 0x05;
const BPF_ALU64: u8 = 0x07;
const BPF_W: u8 = 0x00;
const BPF_DW: u8 = 0x18;
const BPF_IMM: u8 = 0x00;
const BPF_MEM: u8 = 0x60;
const BPF_K: u8 = 0x00;
const BPF_MOV: u8 = 0xb0;
const BPF_CALL: u8 = 0x80;
const BPF_EXIT: u8 = 0x90;

/// Placeholder for the map fd in [`PROGRAM`], patched by [`program`].
const MAP_FD: i32 = -1;

/// The program, one row per instruction (r1 holds `ctx` on entry, the
/// result is r0):
///
/// | # | instruction                  | opcode            | dst | src          | off | imm   |
/// |---|------------------------------|-------------------|-----|--------------|-----|-------|
/// | 0 | `r2 = *(u32 *)(r1 + 16)`     | LDX\|MEM\|W  0x61 | r2  | r1           | 16  | 0     |
/// | 1 | `r1 = map_fd` (low 32 bits)  | LD\|IMM\|DW  0x18 | r1  | PSEUDO_MAP_FD| 0   | fd    |
/// | 2 | (high 32 bits of the above)  | 0x00              | 0   | 0            | 0   | 0     |
/// | 3 | `r3 = XDP_PASS`              | ALU64\|MOV\|K 0xb7| r3  | 0            | 0   | 2     |
/// | 4 | `call bpf_redirect_map`      | JMP\|CALL    0x85 | 0   | 0            | 0   | 51    |
/// | 5 | `exit`                       | JMP\|EXIT    0x95 | 0   | 0            | 0   | 0     |
///
/// Row 0 loads `ctx->rx_queue_index`; rows 1-2 are the two-slot 64-bit
/// immediate load that the verifier turns into the map's address; the
/// call's third argument is the action when the slot is empty.
pub(crate) const PROGRAM: [BpfInsn; 6] = [
    insn(BPF_LDX | BPF_MEM | BPF_W, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
    insn(BPF_LD | BPF_IMM | BPF_DW, 1, BPF_PSEUDO_MAP_FD, 0, MAP_FD),
    insn(0, 0, 0, 0, 0),
    insn(BPF_ALU64 | BPF_MOV | BPF_K, 3, 0, 0, XDP_PASS),
    insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
    insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
];

/// [`PROGRAM`] with the map's fd filled in.
fn program(map_fd: i32) -> [BpfInsn; 6] {
    let mut p = PROGRAM;
    p[1].imm = map_fd;
    p
}

/// `bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `bpf_attr` for `BPF_MAP_UPDATE_ELEM`.
#[repr(C)]
#[derive(Default)]
struct MapUpdateAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `bpf_attr` for `BPF_PROG_LOAD` (up to `expected_attach_type`).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `bpf_attr` for `BPF_LINK_CREATE` (the common part).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// `bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoByFdAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `bpf_attr` for `BPF_PROG_GET_FD_BY_ID` and `BPF_MAP_GET_FD_BY_ID`
/// (`prog_id` and `map_id` share the first word).
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// The bpf(2) system call with `attr`; returns its non-negative result.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<i32> {
    // SAFETY: `attr` is a live, initialised repr(C) prefix of `union
    // bpf_attr` and its exact size is passed; the kernel reads at most that
    // many bytes (zero-extending the rest) and writes back into it only
    // within that size. Pointers inside it (instructions, license, log,
    // info) point to buffers the callers keep alive across the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as i32)
    }
}

/// Takes ownership of an fd the kernel just returned.
fn owned(fd: i32) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2), is open, and nothing else
    // owns it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    let len = name.len().min(15);
    n[..len].copy_from_slice(&name.as_bytes()[..len]);
    n
}

/// A failed bpf(2) step: which, and the kernel's verifier log if any.
#[derive(Debug)]
pub(crate) struct BpfError {
    /// The step, e.g. `BPF_PROG_LOAD`.
    pub op: &'static str,
    /// The OS error.
    pub source: io::Error,
    /// The verifier's log (program load only).
    pub log: String,
}

impl BpfError {
    fn new(op: &'static str, source: io::Error) -> Self {
        BpfError {
            op,
            source,
            log: String::new(),
        }
    }
}

/// The map, the program and (once attached) the link; dropping it
/// detaches the program and frees all three.
#[derive(Debug)]
pub(crate) struct XdpAttachment {
    // Field order is drop order: the link first (detach), then the program
    // and the map.
    link: Option<OwnedFd>,
    prog: OwnedFd,
    map: OwnedFd,
    mode: XdpMode,
    prog_id: u32,
    map_id: u32,
}

impl XdpAttachment {
    /// Creates an `XSKMAP` of `slots` slots and loads the program over it.
    pub(crate) fn load(slots: u32) -> Result<Self, BpfError> {
        let mut m = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: slots,
            map_name: name16("p4k8s_xsks"),
            ..Default::default()
        };
        let map = owned(
            bpf(BPF_MAP_CREATE, &mut m).map_err(|e| BpfError::new("BPF_MAP_CREATE(XSKMAP)", e))?,
        );
        let insns = program(map.as_raw_fd());
        let license = c"GPL";
        let mut p = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name16("p4k8s_xsk"),
            expected_attach_type: BPF_XDP,
            ..Default::default()
        };
        let prog = match bpf(BPF_PROG_LOAD, &mut p) {
            Ok(fd) => owned(fd),
            Err(source) => {
                // Load again with the verifier's log, for the error.
                let mut log = vec![0u8; 16 << 10];
                p.log_level = 1;
                p.log_size = log.len() as u32;
                p.log_buf = log.as_mut_ptr() as u64;
                if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut p) {
                    owned(fd) // loaded the second time: keep it
                } else {
                    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                    return Err(BpfError {
                        op: "BPF_PROG_LOAD(XDP)",
                        source,
                        log: String::from_utf8_lossy(&log[..end]).trim().to_owned(),
                    });
                }
            }
        };
        let info = |fd| info_id(fd).map_err(|e| BpfError::new("BPF_OBJ_GET_INFO_BY_FD", e));
        let prog_id = info(&prog)?;
        let map_id = info(&map)?;
        Ok(XdpAttachment {
            link: None,
            prog,
            map,
            mode: XdpMode::Auto,
            prog_id,
            map_id,
        })
    }

    /// Puts socket `xsk` in slot `slot`.
    pub(crate) fn insert(&self, slot: u32, xsk: &OwnedFd) -> Result<(), BpfError> {
        let key = slot;
        let value = xsk.as_raw_fd() as u32;
        let mut a = MapUpdateAttr {
            map_fd: self.map.as_raw_fd() as u32,
            key: (&key as *const u32) as u64,
            value: (&value as *const u32) as u64,
            flags: BPF_ANY,
            ..Default::default()
        };
        bpf(BPF_MAP_UPDATE_ELEM, &mut a)
            .map(drop)
            .map_err(|e| BpfError::new("BPF_MAP_UPDATE_ELEM(XSKMAP)", e))
    }

    /// Attaches the program to `ifindex` (in the calling thread's
    /// namespace): driver mode, generic mode, or driver then generic.
    pub(crate) fn attach(&mut self, ifindex: u32, mode: XdpMode) -> Result<(), BpfError> {
        let try_mode = |flags| {
            let mut a = LinkCreateAttr {
                prog_fd: self.prog.as_raw_fd() as u32,
                target_ifindex: ifindex,
                attach_type: BPF_XDP,
                flags,
            };
            bpf(BPF_LINK_CREATE, &mut a).map(owned)
        };
        let (link, used) = match mode {
            XdpMode::Native => try_mode(XDP_FLAGS_DRV_MODE)
                .map(|l| (l, XdpMode::Native))
                .map_err(|e| BpfError::new("BPF_LINK_CREATE(XDP, driver mode)", e))?,
            XdpMode::Generic => try_mode(XDP_FLAGS_SKB_MODE)
                .map(|l| (l, XdpMode::Generic))
                .map_err(|e| BpfError::new("BPF_LINK_CREATE(XDP, generic mode)", e))?,
            XdpMode::Auto => match try_mode(XDP_FLAGS_DRV_MODE) {
                Ok(l) => (l, XdpMode::Native),
                Err(_) => try_mode(XDP_FLAGS_SKB_MODE)
                    .map(|l| (l, XdpMode::Generic))
                    .map_err(|e| {
                        BpfError::new("BPF_LINK_CREATE(XDP, driver then generic mode)", e)
                    })?,
            },
        };
        self.link = Some(link);
        self.mode = used;
        Ok(())
    }

    /// The mode the program is attached in ([`XdpMode::Auto`] before).
    pub(crate) fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The program's kernel id.
    pub(crate) fn prog_id(&self) -> u32 {
        self.prog_id
    }

    /// The `XSKMAP`'s kernel id.
    pub(crate) fn map_id(&self) -> u32 {
        self.map_id
    }
}

/// The kernel id of the program or map behind `fd` (the second word of
/// `struct bpf_prog_info` and of `struct bpf_map_info`).
fn info_id(fd: &OwnedFd) -> io::Result<u32> {
    let mut info = [0u32; 2]; // type, id
    let mut a = InfoByFdAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of_val(&info) as u32,
        info: info.as_mut_ptr() as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(info[1])
}

/// True while a BPF program with kernel id `id` exists (a diagnostic for
/// tests and tools: a closed port's program must disappear).
pub fn xdp_prog_exists(id: u32) -> bool {
    exists(BPF_PROG_GET_FD_BY_ID, id)
}

/// True while a BPF map with kernel id `id` exists (a diagnostic for
/// tests and tools: a closed port's `XSKMAP` must disappear).
pub fn xdp_map_exists(id: u32) -> bool {
    exists(BPF_MAP_GET_FD_BY_ID, id)
}

fn exists(cmd: libc::c_long, id: u32) -> bool {
    let mut a = GetFdByIdAttr {
        id,
        ..Default::default()
    };
    match bpf(cmd, &mut a) {
        Ok(fd) => {
            drop(owned(fd));
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    // Offsets printed from `union bpf_attr` in linux/bpf.h with a C
    // compiler (offsetof), kernel headers 6.1.
    #[test]
    fn attr_layouts_match_linux_bpf_h() {
        assert_eq!(offset_of!(MapCreateAttr, max_entries), 12);
        assert_eq!(offset_of!(MapCreateAttr, map_name), 28);
        assert_eq!(offset_of!(MapUpdateAttr, key), 8);
        assert_eq!(offset_of!(MapUpdateAttr, value), 16);
        assert_eq!(offset_of!(MapUpdateAttr, flags), 24);
        assert_eq!(offset_of!(ProgLoadAttr, insns), 8);
        assert_eq!(offset_of!(ProgLoadAttr, license), 16);
        assert_eq!(offset_of!(ProgLoadAttr, log_buf), 32);
        assert_eq!(offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(offset_of!(ProgLoadAttr, expected_attach_type), 68);
        assert_eq!(offset_of!(LinkCreateAttr, attach_type), 8);
        assert_eq!(offset_of!(LinkCreateAttr, flags), 12);
        assert_eq!(size_of::<BpfInsn>(), 8);
    }

    #[test]
    fn program_encodes_as_the_table_says() {
        let p = program(7);
        let bytes: Vec<[u8; 8]> = p
            .iter()
            .map(|i| {
                let mut b = [0u8; 8];
                b[0] = i.code;
                b[1] = i.regs;
                b[2..4].copy_from_slice(&i.off.to_le_bytes());
                b[4..8].copy_from_slice(&i.imm.to_le_bytes());
                b
            })
            .collect();
        // As `llvm-objdump -d` prints this program (little-endian).
        assert_eq!(bytes[0], [0x61, 0x12, 0x10, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[1], [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(bytes[2], [0; 8]);
        assert_eq!(bytes[3], [0xb7, 0x03, 0, 0, 2, 0, 0, 0]);
        assert_eq!(bytes[4], [0x85, 0, 0, 0, 51, 0, 0, 0]);
        assert_eq!(bytes[5], [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }
}
