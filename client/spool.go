package client

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// spool is a crash-safe queue of records on disk, the Recorder's buffer
// between Record and the sender. Records are appended to numbered segment
// files, each framed as
//
//	u32 length | u32 CRC-32C of the payload | payload
//
// (little-endian). Append returns once its records are fsynced; concurrent
// appends share one fsync. The consumer reads records in order from a
// position, and Ack durably records the position below which everything
// was delivered, deleting segments it has passed. After a crash, Open finds
// the acknowledged position and the end of the last whole record, cutting
// off a record that was half written: such a record was never reported as
// appended.
type spool struct {
	dir      string
	maxBytes int64 // bound on unacknowledged bytes; 0: none
	segBytes int64 // a new segment starts once the current one exceeds this

	mu     sync.Mutex // guards the fields below
	head   spoolPos   // where the next record goes
	synced spoolPos   // everything before it is durable: what readers see
	acked  spoolPos   // everything before it is delivered
	used   int64      // bytes from acked to head
	err    error      // a failed write or sync: the spool is unusable
	closed bool

	// Appends go through one committer goroutine, which writes and fsyncs
	// whatever has queued since its last fsync in one go: group commit
	// without a convoy of callers on a lock.
	f    *os.File // the segment being appended to; the committer's
	reqs chan *appendReq
	quit chan struct{}
	done chan struct{}
}

// appendReq is one append waiting for the committer.
type appendReq struct {
	buf  []byte // framed records
	done chan error
}

// spoolPos is a position in the spool: a segment and an offset in it.
type spoolPos struct {
	seg uint64
	off int64
}

func (p spoolPos) less(q spoolPos) bool {
	return p.seg < q.seg || p.seg == q.seg && p.off < q.off
}

// errSpoolFull is returned by append when the records would exceed the
// spool's size limit.
var errSpoolFull = errors.New("spool is full")

const (
	spoolHeader   = 8
	ackFile       = "acked"
	segmentSuffix = ".seg"
	// maxRecordBytes bounds one record, so that a corrupt length cannot
	// make recovery allocate without limit.
	maxRecordBytes = 16 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func segName(seg uint64) string { return fmt.Sprintf("%016d%s", seg, segmentSuffix) }

// openSpool opens (creating if needed) the spool in dir.
func openSpool(dir string, maxBytes, segBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	s := &spool{dir: dir, maxBytes: maxBytes, segBytes: segBytes,
		reqs: make(chan *appendReq, 1024), quit: make(chan struct{}), done: make(chan struct{})}
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	go s.commit()
	return s, nil
}

// segments lists the segment numbers in dir, ascending.
func (s *spool) segments() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

func (s *spool) recover() error {
	b, err := os.ReadFile(filepath.Join(s.dir, ackFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	case len(b) != 16:
		return fmt.Errorf("%s: %d bytes, want 16", ackFile, len(b))
	default:
		s.acked = spoolPos{binary.LittleEndian.Uint64(b), int64(binary.LittleEndian.Uint64(b[8:]))}
	}
	segs, err := s.segments()
	if err != nil {
		return err
	}
	// Segments wholly before the acknowledged one were delivered; a crash
	// may have left them behind.
	for len(segs) > 0 && segs[0] < s.acked.seg {
		if err := os.Remove(filepath.Join(s.dir, segName(segs[0]))); err != nil {
			return err
		}
		segs = segs[1:]
	}
	if len(segs) == 0 {
		s.head = spoolPos{seg: s.acked.seg, off: 0}
		if s.acked.off > 0 {
			s.head.seg++ // the acknowledged segment is gone: start after it
		}
		return s.openSegment(s.head.seg, 0)
	}
	// Only the last segment can end in a torn record: earlier ones were
	// synced before the next was created.
	last := segs[len(segs)-1]
	end, err := validEnd(filepath.Join(s.dir, segName(last)))
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if seg == last {
			s.used += end
		} else if fi, err := os.Stat(filepath.Join(s.dir, segName(seg))); err == nil {
			s.used += fi.Size()
		} else {
			return err
		}
	}
	if segs[0] == s.acked.seg {
		s.used -= s.acked.off
	}
	if s.acked.seg > last || s.acked.seg == last && s.acked.off > end {
		return fmt.Errorf("acknowledged position %d:%d is past the end %d:%d", s.acked.seg, s.acked.off, last, end)
	}
	s.head = spoolPos{last, end}
	return s.openSegment(last, end)
}

// validEnd returns the length of the whole, intact records at the start of
// the file at path.
func validEnd(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var off int64
	for {
		n, err := readRecord(r, nil)
		if err != nil {
			return off, nil // EOF, or a torn or corrupt tail
		}
		off += n
	}
}

// readRecord reads one framed record from r, appending its payload to buf
// when buf is not nil; it returns the record's size on disk.
func readRecord(r io.Reader, buf *[]byte) (int64, error) {
	var h [spoolHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n > maxRecordBytes {
		return 0, fmt.Errorf("record length %d exceeds %d", n, maxRecordBytes)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, err
	}
	if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(h[4:]) {
		return 0, errors.New("record checksum mismatch")
	}
	if buf != nil {
		*buf = payload
	}
	return spoolHeader + int64(n), nil
}

// openSegment opens segment seg for appending at off, cutting off what
// follows. Only recover and the committer call it.
func (s *spool) openSegment(seg uint64, off int64) error {
	f, err := os.OpenFile(filepath.Join(s.dir, segName(seg)), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if err := f.Truncate(off); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	s.f = f
	s.mu.Lock()
	s.head, s.synced = spoolPos{seg, off}, spoolPos{seg, off}
	s.mu.Unlock()
	return nil
}

// append writes records and returns once they are durable. Either all of
// them are appended or, on error, none counts (a partly written tail is
// cut off by the next open).
func (s *spool) append(records [][]byte) error {
	var size int64
	for _, r := range records {
		if len(r) > maxRecordBytes {
			return fmt.Errorf("record of %d bytes exceeds %d", len(r), maxRecordBytes)
		}
		size += spoolHeader + int64(len(r))
	}
	buf := make([]byte, 0, size)
	for _, r := range records {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(r, castagnoli))
		buf = append(buf, r...)
	}
	req := &appendReq{buf: buf, done: make(chan error, 1)}
	select {
	case s.reqs <- req:
	case <-s.quit:
		return errors.New("spool is closed")
	}
	select {
	case err := <-req.done:
		return err
	case <-s.done:
		// The committer stopped; it answers every request it took.
		select {
		case err := <-req.done:
			return err
		default:
			return errors.New("spool is closed")
		}
	}
}

// maxGroupBytes bounds what one write and fsync of the committer carries.
const maxGroupBytes = 8 << 20

// commit is the committer: it takes every queued append, refuses those
// that would overfill the spool, writes the rest with one write and one
// fsync, and then answers them all.
func (s *spool) commit() {
	defer close(s.done)
	var group []*appendReq
	var buf []byte
	for {
		var req *appendReq
		select {
		case req = <-s.reqs:
		case <-s.quit:
			// Answer whoever is still queued.
			for {
				select {
				case req := <-s.reqs:
					req.done <- errors.New("spool is closed")
				default:
					return
				}
			}
		}
		group, buf = group[:0], buf[:0]
		s.mu.Lock()
		err, used := s.err, s.used
		s.mu.Unlock()
		for {
			switch {
			case err != nil:
				req.done <- err
			case s.maxBytes > 0 && used+int64(len(req.buf)) > s.maxBytes:
				req.done <- fmt.Errorf("%w: %d bytes waiting, limit %d", errSpoolFull, used, s.maxBytes)
			default:
				group = append(group, req)
				buf = append(buf, req.buf...)
				used += int64(len(req.buf))
			}
			if len(buf) >= maxGroupBytes {
				break
			}
			select {
			case req = <-s.reqs:
				continue
			default:
			}
			break
		}
		if len(group) == 0 {
			continue
		}
		err = s.write(buf)
		for _, r := range group {
			r.done <- err
		}
	}
}

// write appends buf (whole records) to the current segment, starting the
// next segment first if buf would overfill it, and fsyncs.
func (s *spool) write(buf []byte) error {
	s.mu.Lock()
	head := s.head
	s.mu.Unlock()
	fail := func(what string, err error) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.err = fmt.Errorf("spool: %s: %w", what, err)
		return s.err
	}
	if head.off > 0 && head.off+int64(len(buf)) > s.segBytes {
		if err := errors.Join(s.f.Sync(), s.f.Close()); err != nil {
			return fail("finish a segment", err)
		}
		if err := s.openSegment(head.seg+1, 0); err != nil {
			return fail("start a new segment", err)
		}
		head = spoolPos{head.seg + 1, 0}
	}
	if _, err := s.f.Write(buf); err != nil {
		// The bytes may be partly written; later records would follow
		// garbage, so the spool stops here. Open cuts the tail off.
		return fail("write", err)
	}
	if err := s.f.Sync(); err != nil {
		return fail("sync", err)
	}
	head.off += int64(len(buf))
	s.mu.Lock()
	s.head, s.synced = head, head
	s.used += int64(len(buf))
	s.mu.Unlock()
	return nil
}

// read returns up to max records from pos on (at most maxBytes of payload,
// but at least one), and the position after them. It sees every record
// whose append returned.
func (s *spool) read(pos spoolPos, max int, maxBytes int) ([][]byte, spoolPos, error) {
	s.mu.Lock()
	head := s.synced
	s.mu.Unlock()
	var out [][]byte
	total := 0
	for len(out) < max && pos.less(head) {
		f, err := os.Open(filepath.Join(s.dir, segName(pos.seg)))
		if errors.Is(err, os.ErrNotExist) && pos.seg < head.seg {
			pos = spoolPos{pos.seg + 1, 0}
			continue
		}
		if err != nil {
			return nil, pos, err
		}
		if _, err := f.Seek(pos.off, io.SeekStart); err != nil {
			f.Close()
			return nil, pos, err
		}
		r := bufio.NewReader(f)
		for len(out) < max && (pos.seg < head.seg || pos.off < head.off) {
			var rec []byte
			n, err := readRecord(r, &rec)
			if errors.Is(err, io.EOF) && pos.seg < head.seg {
				break // the end of a finished segment
			}
			if err != nil {
				f.Close()
				return nil, pos, fmt.Errorf("spool: read %s at %d: %w", segName(pos.seg), pos.off, err)
			}
			if len(out) > 0 && total+len(rec) > maxBytes {
				f.Close()
				return out, pos, nil
			}
			out = append(out, rec)
			total += len(rec)
			pos.off += n
		}
		f.Close()
		if pos.seg < head.seg && len(out) < max {
			pos = spoolPos{pos.seg + 1, 0}
		}
	}
	return out, pos, nil
}

// ack records durably that everything before pos was delivered, and
// deletes the segments before pos's.
func (s *spool) ack(pos spoolPos) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.acked.less(pos) {
		return nil
	}
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], pos.seg)
	binary.LittleEndian.PutUint64(b[8:], uint64(pos.off))
	if err := writeFileSync(filepath.Join(s.dir, ackFile), b[:]); err != nil {
		return fmt.Errorf("spool: record acknowledgement: %w", err)
	}
	// Bytes freed: the rest of each segment before pos's, and pos's
	// segment up to pos.
	start := func(seg uint64) int64 {
		if seg == s.acked.seg {
			return s.acked.off
		}
		return 0
	}
	var freed int64
	for seg := s.acked.seg; seg < pos.seg; seg++ {
		path := filepath.Join(s.dir, segName(seg))
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("spool: delete delivered segment: %w", err)
		}
		freed += fi.Size() - start(seg)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("spool: delete delivered segment: %w", err)
		}
	}
	freed += pos.off - start(pos.seg)
	s.used -= freed
	s.acked = pos
	return nil
}

// close stops the committer, answering queued appends with an error, and
// closes the current segment (every completed append was fsynced).
func (s *spool) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	return s.f.Close()
}

// writeFileSync replaces path with b durably: a temporary file, fsynced,
// renamed over path, and the directory fsynced.
func writeFileSync(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
