package engine

import (
	"github.com/milvus-io/milvus-proto/go-api/v2/commonpb"
	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

type database struct {
	name        string
	id          int64
	createdTs   uint64
	collections map[string]*collection
}

// row holds one entity, one value per schema field (same order as
// collection.schema.Fields). Values are int64, int32, float32, float64, bool,
// string, []byte (JSON) or []float32 (float vector); nil means null.
type row []any

type collection struct {
	id        int64
	name      string
	schema    *schemapb.CollectionSchema // as described: field IDs assigned, $meta added
	requested *schemapb.CollectionSchema // as sent, to make a repeated create idempotent
	pkPos     int
	dynPos    int // position of the $meta field, -1 without dynamic schema

	consistency commonpb.ConsistencyLevel
	shards      int32
	properties  []*commonpb.KeyValuePair
	createdTs   uint64
	updateTs    uint64

	rows    []row
	byPK    map[any]int // primary key (int64 or string) -> index in rows
	written int         // rows written by inserts and upserts, rewrites included
	index   []*indexMeta

	loaded bool
}

type indexMeta struct {
	id        int64
	name      string
	fieldName string
	fieldID   int64
	indexType string
	metric    string            // upper case, "" for scalar indexes
	params    map[string]string // remaining user params, reported as JSON "params"
	createdTs uint64
}

// databaseLocked finds a database; the caller holds e.mu.
func (e *Engine) databaseLocked(db string) (*database, error) {
	d, ok := e.dbs[db]
	if !ok {
		return nil, errDatabaseNotFound(db)
	}
	return d, nil
}

// collectionLocked finds a collection; the caller holds e.mu.
func (e *Engine) collectionLocked(db, name string) (*collection, error) {
	d, err := e.databaseLocked(db)
	if err != nil {
		return nil, err
	}
	return d.collection(name)
}

// collection finds a collection of d by name.
func (d *database) collection(name string) (*collection, error) {
	c, ok := d.collections[name]
	if !ok {
		return nil, errCollectionNotFound(name)
	}
	return c, nil
}

// collectionByID finds a collection of d by ID.
func (d *database) collectionByID(id int64) (*collection, error) {
	for _, c := range d.collections {
		if c.id == id {
			return c, nil
		}
	}
	return nil, errCollectionNotFound("")
}

func (c *collection) field(name string) (int, *schemapb.FieldSchema) {
	for i, f := range c.schema.Fields {
		if f.Name == name {
			return i, f
		}
	}
	return -1, nil
}

func (c *collection) pkField() *schemapb.FieldSchema { return c.schema.Fields[c.pkPos] }

// indexOnField returns the index built on a field, if any.
func (c *collection) indexOnField(field string) *indexMeta {
	for _, idx := range c.index {
		if idx.fieldName == field {
			return idx
		}
	}
	return nil
}

// put inserts or replaces a row by primary key. Milvus keeps duplicates
// physically but every read deduplicates to the newest version, so "newest
// wins" is the observable behaviour.
func (c *collection) put(r row) {
	c.written++
	key := r[c.pkPos]
	if i, ok := c.byPK[key]; ok {
		c.rows[i] = r
		return
	}
	c.byPK[key] = len(c.rows)
	c.rows = append(c.rows, r)
}

// remove deletes the rows at the given indexes and rebuilds the pk map.
func (c *collection) remove(drop map[int]bool) {
	kept := c.rows[:0]
	for i, r := range c.rows {
		if !drop[i] {
			kept = append(kept, r)
		}
	}
	// Clear the tail so removed rows can be collected.
	for i := len(kept); i < len(c.rows); i++ {
		c.rows[i] = nil
	}
	c.rows = kept
	c.byPK = make(map[any]int, len(kept))
	for i, r := range kept {
		c.byPK[r[c.pkPos]] = i
	}
}

func isPartitionOK(name string) bool { return name == "" || name == defaultPartition }
