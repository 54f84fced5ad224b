// Files of a model folder, looked at before they are read: a name that is not there is "absent"; a
// symbolic link whose target is gone (a Hugging Face snapshot copied without -L: its files are relative
// links into ../../blobs) and anything that is not a regular file (a FIFO would block the read forever,
// a folder would fail it obscurely) are refused, naming the file, instead of being taken as absent or read.
import { lstatSync, readlinkSync, statSync } from 'node:fs';

/** Something at the path that is not a usable file: `why`, in words; `special`: a FIFO, socket or device (which a
 *  caller that named the path itself may read, as loadTokenizer('/dev/stdin')). */
export interface NotAFile { why: string; special: boolean }

/** What is at `path`, for a model folder's file: 'absent' (no entry at all), 'file' (a regular file, or a link
 *  to one), or why it cannot be used. */
export function folderFileState(path: string): 'absent' | 'file' | NotAFile {
  let l;
  try { l = lstatSync(path); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return 'absent';
    return { why: `cannot be looked at (${code ?? String(e)})`, special: false };
  }
  let st = l;
  if (l.isSymbolicLink()) {
    try { st = statSync(path); } catch (e) {
      let to = '?';
      try { to = readlinkSync(path); } catch { /* unreadable link */ }
      const code = (e as NodeJS.ErrnoException).code;
      return {
        why: code === 'ENOENT'
          ? `is a broken symbolic link (to ${to}, which does not exist): a Hugging Face snapshot copied without its blobs? copy it with the links resolved (cp -rL) or pass the folder in the hub cache`
          : `is a symbolic link (to ${to}) that cannot be followed (${code ?? String(e)})`,
        special: false,
      };
    }
  }
  if (st.isFile()) return 'file';
  const special = st.isFIFO() || st.isSocket() || st.isCharacterDevice() || st.isBlockDevice();
  const what = st.isDirectory() ? 'a folder' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : special ? 'a device' : 'something else';
  return { why: `is ${what}, not a regular file`, special };
}
