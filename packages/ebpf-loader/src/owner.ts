/**
 * @internal Lifecycle state shared by an object and the programs and maps it hands out, so that they can
 * refuse to touch freed libbpf memory after close().
 */
export interface OwnerState {
  /** Set once the owner has been closed. */
  closed: boolean;
  /** Set once the kernel objects exist (after a successful load). */
  loaded: boolean;
  /** Describes the owner in error messages, e.g. `BPF object /tmp/x.o`. */
  label: string;
}
