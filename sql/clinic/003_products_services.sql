-- medpro clinic migration 003: products and services, categories, product_categories

CREATE TABLE product_services (
    id               uuid          PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id       uuid          NOT NULL,
    name             text          NOT NULL,
    description      text,
    type             text          NOT NULL DEFAULT 'service'
                     CONSTRAINT product_services_type_check CHECK (type IN ('product', 'service')),
    price            numeric(12,2) NOT NULL DEFAULT 0
                     CONSTRAINT product_services_price_check CHECK (price >= 0),
    tax_rate         numeric(5,2)  NOT NULL DEFAULT 0
                     CONSTRAINT product_services_tax_rate_check CHECK (tax_rate >= 0 AND tax_rate <= 100),
    duration_minutes integer
                     CONSTRAINT product_services_duration_minutes_check CHECK (duration_minutes > 0),
    is_medical       boolean       NOT NULL DEFAULT true,
    is_active        boolean       NOT NULL DEFAULT true,
    created_at       timestamptz   NOT NULL DEFAULT now(),
    updated_at       timestamptz   NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);

COMMENT ON TABLE product_services IS
    'Catalogue of products sold and services (acts) performed by the clinic (soft-deleted).';
COMMENT ON COLUMN product_services.price IS
    'Unit price excluding VAT, in the clinic currency.';
COMMENT ON COLUMN product_services.tax_rate IS
    'VAT rate in percent (0..100).';
COMMENT ON COLUMN product_services.duration_minutes IS
    'Usual duration of a service, used to propose appointment end times.';
COMMENT ON COLUMN product_services.is_medical IS
    'A medical act: VAT-exempt when medpro_settings.medical_vat_exempt.';

CREATE INDEX product_services_name_idx
    ON product_services (name)
    WHERE deleted_at IS NULL;

CREATE TRIGGER product_services_company
    BEFORE INSERT OR UPDATE ON product_services
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER product_services_updated_at
    BEFORE UPDATE ON product_services
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();


CREATE TABLE categories (
    id          uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid         NOT NULL,
    name        text         NOT NULL,
    description text,
    color       text,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    updated_at  timestamptz  NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

COMMENT ON TABLE categories IS
    'Categories grouping products and services (soft-deleted); names are unique among live categories.';
COMMENT ON COLUMN categories.color IS
    'Display colour, e.g. #3366FF.';

CREATE UNIQUE INDEX categories_name_key
    ON categories (name)
    WHERE deleted_at IS NULL;

CREATE TRIGGER categories_company
    BEFORE INSERT OR UPDATE ON categories
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER categories_updated_at
    BEFORE UPDATE ON categories
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();


CREATE TABLE product_categories (
    id                 uuid         PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id         uuid         NOT NULL,
    product_service_id uuid         NOT NULL
                       CONSTRAINT product_categories_product_service_id_fkey
                       REFERENCES product_services (id) ON DELETE CASCADE,
    category_id        uuid         NOT NULL
                       CONSTRAINT product_categories_category_id_fkey
                       REFERENCES categories (id) ON DELETE CASCADE,
    created_at         timestamptz  NOT NULL DEFAULT now(),
    updated_at         timestamptz  NOT NULL DEFAULT now(),
    CONSTRAINT product_categories_product_service_id_category_id_key
        UNIQUE (product_service_id, category_id)
);

COMMENT ON TABLE product_categories IS
    'Which product or service belongs to which category (many-to-many; rows are deleted, not soft-deleted).';

-- product_service_id is covered by the unique constraint's index.
CREATE INDEX product_categories_category_id_idx
    ON product_categories (category_id);

CREATE TRIGGER product_categories_company
    BEFORE INSERT OR UPDATE ON product_categories
    FOR EACH ROW EXECUTE FUNCTION medpro_check_company();

CREATE TRIGGER product_categories_updated_at
    BEFORE UPDATE ON product_categories
    FOR EACH ROW EXECUTE FUNCTION medpro_set_updated_at();
