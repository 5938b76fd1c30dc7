module github.com/shmring/shmring

go 1.22

require golang.org/x/sys v0.30.0

require github.com/google/uuid v1.6.0
