# medpro: PGXS build.  `make`, `make install`, `make installcheck`.
EXTENSION   = medpro
EXTVERSION  = 0.1.0

MODULE_big  = medpro
OBJS        = src/medpro.o src/crypto.o src/jose.o src/jwt.o src/jwt_pkey.o src/remote.o src/audit.o \
              src/migrate.o src/rollout.o src/provision.o \
              src/tenant.o src/auth.o src/keyring.o src/routecache.o src/deparse.o src/fdw.o \
              src/identifiers.o src/fieldcrypt.o

# The install script is assembled from one part per concern (sql/ext/NN_*.sql).
EXT_SCRIPT  = $(EXTENSION)--$(EXTVERSION).sql
EXT_PARTS   = $(sort $(wildcard sql/ext/*.sql))
# The clinic schema: versioned migrations, loaded into medpro.migrations.
CLINIC_MIGRATIONS = $(sort $(wildcard sql/clinic/[0-9][0-9][0-9]_*.sql))
DATA_built  = $(EXT_SCRIPT)
EXTRA_CLEAN = $(EXT_SCRIPT) results/ regression.diffs regression.out

REGRESS      = setup jwt jwt_asym crypto auth tenant provision routing routing_pushdown routing_failure encoding dump keyring lifecycle

PG_CONFIG  ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src -I$(shell $(PG_CONFIG) --includedir)
SHLIB_LINK  = -lcrypto -largon2 -lpq

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The directories too: a part or migration removed changes their mtime.
$(EXT_SCRIPT): $(EXT_PARTS) $(CLINIC_MIGRATIONS) sql/ext sql/clinic scripts/gen-migrations.sh
	cat $(EXT_PARTS) > $@
	sh scripts/gen-migrations.sh $(CLINIC_MIGRATIONS) >> $@

$(OBJS): $(wildcard src/*.h)
