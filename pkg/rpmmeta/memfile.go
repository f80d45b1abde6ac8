package rpmmeta

// release gives the read-ahead buffer that holds the tail back to readHeaders' pool; the tail is gone after.
func (lay *layout) release() {
	if lay.tailBuf != nil {
		lay.tailBuf.Reset(nil)
		guardBufs.Put(lay.tailBuf)
		lay.tail, lay.tailBuf = nil, nil
	}
}
