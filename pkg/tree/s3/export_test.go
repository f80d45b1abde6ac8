package s3tree

// SetBeforeRepomd sets the seam Publish calls between its last lease renewal and the PUT of repomd.xml.
func SetBeforeRepomd(t *Tree, f func(repo string)) { t.beforeRepomd = f }
